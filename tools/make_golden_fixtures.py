#!/usr/bin/env python3
"""Writes golden fixtures for tests/model/golden_test.cpp: logits and greedy tokens from HF transformers.

For each variant it writes a tiny model with `tandem make-model` (fp32 weights, so HF and tandem compare
cleanly), loads it with transformers in float32 (attn_implementation="eager"), and records, for a few
prompts of token ids (lengths 5..100): the logits at a stated subset of prompt positions and HF's greedy
continuation of 32 tokens (full recompute each step, EOS ignored). Output:
tests/fixtures/golden/<variant>.json (all fixtures together stay well under 1.5 MB).

Needs torch and transformers (run on the GPU machine; CPU is fine too):
    python3 tools/make_golden_fixtures.py --tandem build/bin/tandem --out tests/fixtures/golden
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

# name -> make-model options (the C++ test rebuilds the same model from these with write_preset_model).
VARIANTS = {
    "tiny_gqa_llama3": dict(preset="tiny", seed=1, rope_scaling="llama3", rope_factor=0.0,
                            tie_word_embeddings=False, num_kv_heads=0, num_layers=0),
    "tiny_gqa_linear_tied": dict(preset="tiny", seed=2, rope_scaling="linear", rope_factor=2.0,
                                 tie_word_embeddings=True, num_kv_heads=0, num_layers=0),
    "tiny_mha_norope_untied": dict(preset="tiny", seed=3, rope_scaling="none", rope_factor=0.0,
                                   tie_word_embeddings=False, num_kv_heads=4, num_layers=0),
    "tiny_mqa_llama3_tied": dict(preset="tiny", seed=4, rope_scaling="llama3", rope_factor=4.0,
                                 tie_word_embeddings=True, num_kv_heads=1, num_layers=3),
}
PROMPT_LENGTHS = [5, 37, 100]
GREEDY_STEPS = 32


def make_model_args(opts, out_dir):
    args = ["make-model", "--preset", opts["preset"], "--out", out_dir, "--seed", str(opts["seed"]),
            "--dtype", "float32", "--rope-scaling", opts["rope_scaling"],
            "--tie-word-embeddings", "true" if opts["tie_word_embeddings"] else "false"]
    if opts["rope_factor"]:
        args += ["--rope-factor", str(opts["rope_factor"])]
    if opts["num_kv_heads"]:
        args += ["--num-kv-heads", str(opts["num_kv_heads"])]
    if opts["num_layers"]:
        args += ["--num-layers", str(opts["num_layers"])]
    return args


def logit_positions(length):
    return sorted({0, 1, length // 3, length // 2, length - 2, length - 1} & set(range(length)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tandem", required=True, help="path of a built tandem binary")
    ap.add_argument("--out", required=True, help="output directory (tests/fixtures/golden)")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), help="subset of: " + ", ".join(VARIANTS))
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    os.makedirs(args.out, exist_ok=True)
    for name in args.variants:
        opts = VARIANTS[name]
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = os.path.join(tmp, name)
            subprocess.run([args.tandem] + make_model_args(opts, model_dir), check=True)
            try:
                model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
            except TypeError:  # transformers < 4.56 spells it torch_dtype
                model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32,
                                                             attn_implementation="eager")
            model.eval()
            config = json.load(open(os.path.join(model_dir, "config.json")))
            vocab = config["vocab_size"]
            bos = config["bos_token_id"]
            rng = random.Random(1000 + opts["seed"])
            prompts = []
            for length in PROMPT_LENGTHS:
                ids = [bos] + [rng.randrange(0, vocab) for _ in range(length - 1)]
                with torch.no_grad():
                    logits = model(torch.tensor([ids])).logits[0].float()
                positions = logit_positions(length)
                seq = list(ids)
                greedy, gaps = [], []
                with torch.no_grad():
                    for _ in range(GREEDY_STEPS):
                        last = model(torch.tensor([seq])).logits[0, -1].float()
                        top2 = torch.topk(last, 2)
                        tok = int(torch.argmax(last))
                        greedy.append(tok)
                        gaps.append(round(float(top2.values[0] - top2.values[1]), 6))
                        seq.append(tok)
                prompts.append({
                    "token_ids": ids,
                    "logit_positions": positions,
                    "logits": [[round(float(x), 5) for x in logits[p]] for p in positions],
                    "greedy_tokens": greedy,
                    "greedy_top2_gaps": gaps,
                })
            fixture = {
                "variant": name,
                "make_model": dict(opts, dtype="float32"),
                "make_model_args": make_model_args(opts, "DIR"),
                "generated_by": {"transformers": transformers.__version__, "torch": torch.__version__,
                                 "attn_implementation": "eager", "dtype": "float32"},
                "prompts": prompts,
            }
            path = os.path.join(args.out, name + ".json")
            with open(path, "w") as f:
                json.dump(fixture, f, separators=(",", ":"))
                f.write("\n")
            print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
