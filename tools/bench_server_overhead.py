#!/usr/bin/env python3
"""Server overhead of `tandem serve`: HTTP + JSON + tokenization + detokenization per request, measured
as client end-to-end latency minus the engine's own time (the Server-Timing header's engine_ttft: request
added -> first token, inside the engine) for max_tokens=1 requests over a keep-alive connection; plus
the server's own view (server_total - engine_ttft), and resident memory per idle connection.

  tools/bench_server_overhead.py --bin build/bin/tandem [--model DIR] [--requests 200]

Without --model a tiny model is written with `tandem make-model --preset tiny` and its
max_position_embeddings raised to 8192 so that 7500-token prompts fit. Prints figures; asserts nothing.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("TANDEM_BIN", "build/bin/tandem"))
    ap.add_argument("--model")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--idle-connections", type=int, default=2000)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="tandem-overhead-")
    model = args.model
    if not model:
        model = os.path.join(tmp, "tiny")
        subprocess.run([args.bin, "make-model", "--preset", "tiny", "--out", model], check=True, timeout=300,
                       stdout=subprocess.DEVNULL)
        cfg_path = os.path.join(model, "config.json")
        cfg = json.load(open(cfg_path))
        cfg["max_position_embeddings"] = 8192
        json.dump(cfg, open(cfg_path, "w"))
    log = open(os.path.join(tmp, "serve.log"), "wb")
    proc = subprocess.Popen([args.bin, "serve", model, "--host", "127.0.0.1", "--port", "0", "--device", "cpu",
                             "--served-model-name", "m", "--max-model-len", "8192", "--log-level", "warning",
                             "--no-enable-prefix-caching"], stdout=log, stderr=subprocess.STDOUT)
    try:
        # The ready line is logged at INFO; with --log-level warning poll the port from /proc instead.
        port = None
        deadline = time.time() + 120
        while time.time() < deadline and port is None:
            if proc.poll() is not None:
                sys.exit("tandem serve exited:\n" + open(log.name).read())
            out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
            for line in out.splitlines():
                if f"pid={proc.pid}," in line:
                    port = int(line.split()[3].rsplit(":", 1)[1])
            time.sleep(0.1)
        base = f"127.0.0.1:{port}"
        while True:
            try:
                if urllib.request.urlopen(f"http://{base}/health", timeout=2).status == 200:
                    break
            except Exception:
                time.sleep(0.1)

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

        def tokenize(text):
            conn.request("POST", "/tokenize", json.dumps({"prompt": text}), {"Content-Type": "application/json"})
            return json.loads(conn.getresponse().read())["count"]

        print(f"server overhead per request (max_tokens=1, keep-alive, {args.requests} requests each)")
        for target in (100, 7500):
            words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
            text = " ".join(words[i % len(words)] for i in range(target))
            while tokenize(text) > target:
                text = text[: int(len(text) * 0.97)]
            n_tok = tokenize(text)
            client_overhead, server_overhead, e2e = [], [], []
            for i in range(args.requests + 5):
                body = json.dumps({"model": "m", "prompt": text, "max_tokens": 1, "temperature": 0})
                t0 = time.perf_counter()
                conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                t1 = time.perf_counter()
                timing = dict(re.findall(r"(\w+);dur=([0-9.]+)", r.getheader("Server-Timing", "")))
                if i < 5:
                    continue  # warm-up
                engine_ms = float(timing["engine_ttft"])
                e2e.append((t1 - t0) * 1e3)
                client_overhead.append((t1 - t0) * 1e3 - engine_ms)
                server_overhead.append(float(timing["server_total"]) - engine_ms)
            print(f"  prompt {n_tok:5d} tokens: e2e p50 {pct(e2e, 50):8.3f} ms | overhead seen by client "
                  f"p50 {pct(client_overhead, 50):.3f} ms p99 {pct(client_overhead, 99):.3f} ms | inside server "
                  f"p50 {pct(server_overhead, 50):.3f} ms p99 {pct(server_overhead, 99):.3f} ms")
        conn.close()

        before = rss_kib(proc.pid)
        socks = []
        for _ in range(args.idle_connections):
            s = socket.create_connection(("127.0.0.1", port))
            socks.append(s)
        time.sleep(1.0)
        after = rss_kib(proc.pid)
        print(f"idle connections: {len(socks)}, RSS +{after - before} KiB, "
              f"{(after - before) * 1024 / len(socks):.0f} bytes per idle connection")
        for s in socks:
            s.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
