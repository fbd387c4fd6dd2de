#!/usr/bin/env python3
"""Single-thread encode throughput of HF `tokenizers` on the corpora of `tandem bench tokenizer`.

The documents come from `tandem bench tokenizer --dump-texts DIR` (so both measure the same texts);
each is encoded one at a time with add_special_tokens=False, TOKENIZERS_PARALLELISM=false, one untimed
warm-up pass, then whole passes until --seconds have elapsed.

Usage: .venv/bin/python tools/bench_tokenizer_hf.py --tokenizer PATH [--tandem build/bin/tandem] [--seconds 3]
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
from tokenizers import Tokenizer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True, help="tokenizer.json or a model directory")
    ap.add_argument("--tandem", default="build/bin/tandem", help="tandem binary (to dump the corpora)")
    ap.add_argument("--texts", help="directory already holding <corpus>.jsonl (skips --tandem)")
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    path = args.tokenizer
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
    tok = Tokenizer.from_file(path)
    texts = args.texts
    tmp = None
    if not texts:
        tmp = tempfile.TemporaryDirectory()
        texts = tmp.name
        subprocess.run([args.tandem, "bench", "tokenizer", "--dump-texts", texts], check=True)
    print(f"HF tokenizers {__import__('tokenizers').__version__} encode, single thread, tokenizer {args.tokenizer}")
    print(f"{'corpus':<8} {'docs':>6} {'MB/s':>9} {'tokens/s':>10} {'bytes/token':>12}")
    for name in ["prose", "code", "unicode"]:
        with open(os.path.join(texts, name + ".jsonl"), encoding="utf-8") as f:
            docs = [json.loads(line) for line in f if line.strip()]
        for d in docs:
            tok.encode(d, add_special_tokens=False)
        nbytes = ntok = 0
        start = time.perf_counter()
        while True:
            for d in docs:
                ntok += len(tok.encode(d, add_special_tokens=False).ids)
                nbytes += len(d.encode("utf-8"))
            elapsed = time.perf_counter() - start
            if elapsed >= args.seconds:
                break
        print(f"{name:<8} {len(docs):>6} {nbytes / 1e6 / elapsed:>9.2f} {ntok / elapsed:>10.0f} {nbytes / ntok:>12.2f}")


if __name__ == "__main__":
    main()
