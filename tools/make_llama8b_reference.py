#!/usr/bin/env python3
"""Writes a random Llama-3.1-8B-shaped checkpoint with HF transformers and HF reference logits for it,
for tests/cuda/hf_reference_test.cpp (run by scripts/gpu-8b-check.sh on the GPU machine).

Steps:
  1. Build LlamaForCausalLM from --config-dir/config.json in bf16 directly on the GPU, then re-initialise
     every weight from --seed (linear/embedding weights N(0, initializer_range); RMSNorm weights
     1 + N(0, --norm-std), so a loader or kernel that ignores norm weights is caught) and check that no
     weight is all zeros.
  2. save_pretrained(--out, safe_serialization=True, max_shard_size=5GB): sharded safetensors + index, bf16,
     plus HF's config.json; the tokenizer / generation files of --config-dir are copied next to them.
  3. For a few prompts of random token ids (BOS, then ids drawn with the seed from the vocabulary, special
     ids excluded), HF's greedy continuation of --new-tokens tokens (argmax of HF's own bf16 logits each
     step, with HF's KV cache, attn_implementation="sdpa"; EOS does not stop it), then one teacher-forced
     forward over prompt + continuation. For the last --keep positions it writes the logits
     lm_head(h) with h = HF's bf16 final hidden state and the product taken in fp32 (unrounded, as
     tandem's lm_head GEMM writes fp32 logits; HF's own logits are rounded to bf16, which creates ties).
  4. Unless --no-fp32-reference: the same model converted to fp32 teacher-forces the same sequences; its
     logits are written too (a noise floor: how far HF bf16 itself is from an fp32 forward).

Output (DIR = --out):
  DIR/config.json, DIR/model-0000k-of-0000n.safetensors, DIR/model.safetensors.index.json, tokenizer files
  DIR/reference/manifest.json           written last; its presence marks a complete reference
  DIR/reference/<name>.tokens.json      {"token_ids": [...], "prompt_len": P}
  DIR/reference/<name>.logits.f32       float32 little-endian [num_positions, vocab], positions
                                        first_position .. first_position + num_positions - 1
  DIR/reference/<name>.fp32_logits.f32  the same from the fp32 model (optional)

Needs torch and transformers (>= 4.56; written against torch 2.11 / transformers 5.17) and a GPU with
~60 GB of memory for the 8B shape (bf16 model 16 GB, fp32 copy 32 GB). Example:
    python3 tools/make_llama8b_reference.py --config-dir ../shared/models/llama-3.1-8b --out /tmp/llama8b-ref
"""
import argparse
import inspect
import json
import os
import random
import shutil
import sys
import time

PROMPT_LENGTHS = [16, 200, 1000, 3000]
WEIGHT_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".index.json")


def log(msg):
    print(f"[make_llama8b_reference] {msg}", flush=True)


def special_ids(config_dir, config):
    """Token ids that prompts must avoid: tokenizer.json added tokens marked special, plus bos/eos/pad."""
    ids = set()
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        v = config.get(key)
        if isinstance(v, int):
            ids.add(v)
        elif isinstance(v, list):
            ids.update(x for x in v if isinstance(x, int))
    tok_path = os.path.join(config_dir, "tokenizer.json")
    if os.path.exists(tok_path):
        with open(tok_path) as f:
            tok = json.load(f)
        for t in tok.get("added_tokens", []):
            if t.get("special", False) and isinstance(t.get("id"), int):
                ids.add(t["id"])
    return ids


def make_prompts(config, avoid, seed, lengths):
    rng = random.Random(seed)
    vocab = config["vocab_size"]
    bos = config.get("bos_token_id")
    allowed = [i for i in range(vocab) if i not in avoid]
    prompts = []
    for n in lengths:
        ids = [bos] if isinstance(bos, int) else []
        ids += [rng.choice(allowed) for _ in range(n - len(ids))]
        prompts.append(ids)
    return prompts


def set_fp32_matmul_exact(torch):
    """No TF32: the fp32 reference and the fp32 lm_head product must be real fp32 products."""
    try:  # torch >= 2.9; mixing it with the legacy allow_tf32 flags is an error there
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    except AttributeError:
        torch.backends.cuda.matmul.allow_tf32 = False


def build_model(torch, config_dir, seed, norm_std):
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(config_dir)
    t0 = time.time()
    with torch.device("cuda"):
        try:
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
        except TypeError:  # transformers < 4.56 spells it torch_dtype
            model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.bfloat16, attn_implementation="sdpa")
    model.eval()
    std = float(getattr(config, "initializer_range", 0.02))
    gen = torch.Generator(device="cuda")
    gen.manual_seed(seed)
    with torch.no_grad():
        seen = set()
        for name, p in model.named_parameters():
            if p.data_ptr() in seen:  # tied weights: initialise once
                continue
            seen.add(p.data_ptr())
            if p.dtype != torch.bfloat16 or p.device.type != "cuda":
                raise SystemExit(f"parameter {name} is {p.dtype} on {p.device}, expected bfloat16 on cuda")
            if p.ndim >= 2:
                p.normal_(0.0, std, generator=gen)
            else:  # RMSNorm weights
                p.normal_(1.0, norm_std, generator=gen)
        # The check the brief asks for: nothing left at zero (an init that silently did nothing).
        for name, p in model.named_parameters():
            nz = int(torch.count_nonzero(p))
            if nz < 0.99 * p.numel():
                raise SystemExit(f"parameter {name}: only {nz} of {p.numel()} elements are non-zero after init")
    torch.cuda.synchronize()
    n_params = sum(p.numel() for p in model.parameters())
    log(f"built {type(model).__name__} ({n_params / 1e9:.3f} B params, bf16, sdpa) with seed {seed} "
        f"in {time.time() - t0:.1f} s; transformers {transformers.__version__}, torch {torch.__version__}")
    return model


def save_checkpoint(model, config_dir, out):
    t0 = time.time()
    # 5 GB shards as the published Llama-3.1-8B has (transformers 5 defaults to 50 GB, i.e. one file).
    kwargs = {"max_shard_size": "5GB"}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        kwargs["safe_serialization"] = True  # transformers 4.x; 5.x writes only safetensors and dropped the flag
    model.save_pretrained(out, **kwargs)
    files = sorted(os.listdir(out))
    shards = [f for f in files if f.endswith(".safetensors")]
    if not shards or any(f.endswith(".bin") for f in files):
        raise SystemExit(f"save_pretrained did not write safetensors only: {files}")
    if len(shards) > 1 and "model.safetensors.index.json" not in files:
        raise SystemExit(f"{len(shards)} shards but no model.safetensors.index.json: {files}")
    # Tokenizer and generation files from the source directory (config.json stays the one HF wrote).
    for f in sorted(os.listdir(config_dir)):
        src = os.path.join(config_dir, f)
        if not os.path.isfile(src) or f == "config.json" or f.endswith(WEIGHT_FILE_SUFFIXES):
            continue
        if not os.path.exists(os.path.join(out, f)):
            shutil.copy2(src, os.path.join(out, f))
    total = sum(os.path.getsize(os.path.join(out, f)) for f in shards)
    log(f"saved {len(shards)} safetensors shard(s), {total / 1e9:.2f} GB, in {time.time() - t0:.1f} s: {out}")
    return total


def call_with_logits_to_keep(model, keep, **kwargs):
    try:
        return model(logits_to_keep=keep, **kwargs)
    except TypeError:  # transformers without logits_to_keep
        return model(**kwargs)


def greedy_continuation(torch, model, prompt, steps):
    """HF greedy decoding: argmax of HF's logits at each step, with HF's KV cache; EOS does not stop it."""
    out = call_with_logits_to_keep(model, 1, input_ids=torch.tensor([prompt], device="cuda"), use_cache=True)
    past = out.past_key_values
    nxt = int(out.logits[0, -1].float().argmax())
    tokens = []
    for i in range(steps):
        tokens.append(nxt)
        if i + 1 == steps:
            break
        out = model(input_ids=torch.tensor([[nxt]], device="cuda"), past_key_values=past, use_cache=True)
        past = out.past_key_values
        nxt = int(out.logits[0, -1].float().argmax())
    del past, out
    return tokens


def tail_logits(torch, model, ids, keep):
    """Teacher-forced forward; fp32 logits lm_head(h) of the last `keep` positions (h in the model's dtype),
    and HF's own logits there (model dtype, as HF returns them)."""
    decoder = model.model if hasattr(model, "model") else model.get_decoder()
    hidden = decoder(input_ids=torch.tensor([ids], device="cuda"), use_cache=False).last_hidden_state
    tail = hidden[0, -keep:]
    w = model.lm_head.weight
    exact = torch.nn.functional.linear(tail.float(), w.float())
    native = model.lm_head(tail).float()
    del hidden
    return exact, native


def compare(torch, got, ref):
    cos = torch.nn.functional.cosine_similarity(got.double(), ref.double(), dim=-1)
    top1 = (got.argmax(-1) == ref.argmax(-1)).double().mean()
    return {"cos_min": float(cos.min()), "cos_mean": float(cos.mean()), "top1": float(top1),
            "max_abs": float((got - ref).abs().max())}


def write_f32(path, t):
    t.detach().float().cpu().contiguous().numpy().astype("<f4", copy=False).tofile(path)


def read_f32(path, rows, cols):
    import numpy
    return numpy.fromfile(path, dtype="<f4").reshape(rows, cols)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config-dir", required=True, help="model directory with config.json and tokenizer files")
    ap.add_argument("--out", required=True, help="output directory (checkpoint + reference/)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prompt-lengths", type=int, nargs="+", default=PROMPT_LENGTHS)
    ap.add_argument("--new-tokens", type=int, default=32, help="greedy tokens generated per prompt")
    ap.add_argument("--keep", type=int, default=64, help="logit positions kept per sequence (the last ones)")
    ap.add_argument("--norm-std", type=float, default=0.1, help="RMSNorm weights are 1 + N(0, norm_std)")
    ap.add_argument("--no-fp32-reference", action="store_true", help="skip the fp32 noise-floor forward")
    ap.add_argument("--force", action="store_true", help="replace --out if it is an earlier output of this tool")
    args = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this tool builds the model on the GPU")
    with open(os.path.join(args.config_dir, "config.json")) as f:
        src_config = json.load(f)
    if os.path.exists(args.out) and os.listdir(args.out):
        if not args.force:
            raise SystemExit(f"{args.out} exists and is not empty (use --force to replace it)")
        if not os.path.isdir(os.path.join(args.out, "reference")):  # what this tool creates first
            raise SystemExit(f"{args.out} does not look like this tool's output (no reference/); not deleting it")
        shutil.rmtree(args.out)
    os.makedirs(args.out, exist_ok=True)
    ref_dir = os.path.join(args.out, "reference")
    os.makedirs(ref_dir)
    set_fp32_matmul_exact(torch)
    torch.manual_seed(args.seed)

    model = build_model(torch, args.config_dir, args.seed, args.norm_std)
    ckpt_bytes = save_checkpoint(model, args.config_dir, args.out)
    vocab = model.config.vocab_size

    prompts = make_prompts(src_config, special_ids(args.config_dir, src_config), args.seed, args.prompt_lengths)
    sequences = []
    with torch.inference_mode():
        for prompt in prompts:
            name = f"p{len(prompt)}"
            t0 = time.time()
            cont = greedy_continuation(torch, model, prompt, args.new_tokens)
            ids = prompt + cont
            keep = min(args.keep, len(ids))
            first = len(ids) - keep
            exact, native = tail_logits(torch, model, ids, keep)
            # HF incremental (cached) greedy vs HF teacher-forced argmax at the generated positions:
            # position p predicts token p + 1, so positions len(prompt)-1 .. len(ids)-2 predicted `cont`.
            pred = exact.argmax(-1).tolist()
            agree = [pred[p - first] == ids[p + 1] for p in range(max(first, len(prompt) - 1), len(ids) - 1)]
            with open(os.path.join(ref_dir, name + ".tokens.json"), "w") as f:
                json.dump({"token_ids": ids, "prompt_len": len(prompt)}, f)
            write_f32(os.path.join(ref_dir, name + ".logits.f32"), exact)
            seq = {
                "name": name,
                "prompt_len": len(prompt),
                "num_tokens": len(ids),
                "continuation": cont,
                "tokens_file": name + ".tokens.json",
                "logits_file": name + ".logits.f32",
                "first_position": first,
                "num_positions": keep,
                "hf_checks": {
                    "cached_greedy_vs_teacher_forced_top1": sum(agree) / max(1, len(agree)),
                    "bf16_rounded_logits_vs_exact": compare(torch, native, exact),
                },
            }
            sequences.append(seq)
            log(f"{name}: {len(prompt)} prompt + {len(cont)} greedy tokens, logits at positions {first}..{len(ids) - 1} "
                f"({time.time() - t0:.1f} s); continuation {cont[:8]}...; HF cached-vs-full top-1 "
                f"{seq['hf_checks']['cached_greedy_vs_teacher_forced_top1']:.3f}")
            del exact, native
            torch.cuda.empty_cache()

    if not args.no_fp32_reference:
        t0 = time.time()
        with torch.no_grad():  # outside inference_mode: module conversion swaps parameter storage
            model = model.float()
        torch.cuda.empty_cache()
        with torch.inference_mode():
            for seq in sequences:
                with open(os.path.join(ref_dir, seq["tokens_file"])) as f:
                    ids = json.load(f)["token_ids"]
                exact32, _ = tail_logits(torch, model, ids, seq["num_positions"])
                ref = torch.from_numpy(read_f32(os.path.join(ref_dir, seq["logits_file"]), seq["num_positions"], vocab))
                seq["fp32_logits_file"] = seq["name"] + ".fp32_logits.f32"
                write_f32(os.path.join(ref_dir, seq["fp32_logits_file"]), exact32)
                seq["hf_checks"]["hf_bf16_vs_hf_fp32"] = compare(torch, ref.to("cuda"), exact32)
                log(f"{seq['name']}: HF bf16 vs HF fp32 {seq['hf_checks']['hf_bf16_vs_hf_fp32']}")
                del exact32, ref
                torch.cuda.empty_cache()
        log(f"fp32 reference in {time.time() - t0:.1f} s")

    import transformers
    manifest = {
        "format": 1,
        "generated_by": {"tool": "tools/make_llama8b_reference.py", "torch": torch.__version__,
                         "transformers": transformers.__version__, "device": torch.cuda.get_device_name(0)},
        "seed": args.seed,
        "norm_std": args.norm_std,
        "dtype": "bfloat16",
        "attn_implementation": "sdpa",
        "vocab_size": vocab,
        "checkpoint_bytes": ckpt_bytes,
        "logits": "fp32 lm_head(h), h = HF bf16 final hidden state (after the final norm), product in fp32",
        "sequences": sequences,
    }
    with open(os.path.join(ref_dir, "manifest.json.tmp"), "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(os.path.join(ref_dir, "manifest.json.tmp"), os.path.join(ref_dir, "manifest.json"))
    ref_bytes = sum(os.path.getsize(os.path.join(ref_dir, f)) for f in os.listdir(ref_dir))
    log(f"wrote {ref_dir} ({ref_bytes / 1e6:.1f} MB of reference data)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
