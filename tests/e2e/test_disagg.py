"""End-to-end acceptance tests of disaggregated prefill/decode without the proxy: real `tandem serve`
processes on loopback (tiny model, CPU) driven by plain HTTP, the way a proxy drives them.

- a producer (role producer) answers max_tokens 1 + {"do_remote_decode": true} with kv_transfer_params;
  a consumer (role consumer) given those params continues; producer text + consumer text equals the
  colocated server's greedy text, usage counts every completion token once, for prompts of 1 to 2000
  tokens (block size +-1) at concurrency 64;
- faults: the producer SIGKILLed before the consumer request (the consumer recomputes, identical text);
  an expired lease (the producer's used-block gauge returns to 0, the consumer recomputes); a client
  aborting a consumer stream mid-way (blocks back to 0 on both sides); a consumer serving a different
  model (fingerprint mismatch: recompute, no error).

Uses the fixtures of conftest.py (tandem_bin, tiny_model_dir, serve). Every wait is bounded.
"""
import json
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from http_json import http
from raw_stream import open_completion_stream

BLOCK = 16
USED_BLOCKS = "tandem:kv_cache_used_blocks"
TRANSFERS = "tandem:kv_transfers"
RECOMPUTES = "tandem:kv_transfer_recomputes"
LEASES_EXPIRED = "tandem:kv_leases_expired"


# ---- helpers ----

def metric(url, name):
    status, body = http("GET", url + "/metrics", timeout=10)
    assert status == 200, body
    total, found = 0.0, False
    for line in body.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, _, value = line.rpartition(" ")
        if key.split("{", 1)[0] in (name, name + "_total"):  # counters may carry the _total suffix
            total += float(value)
            found = True
    assert found, f"{name} is not in {url}/metrics"
    return total


def wait_metric(url, name, want, timeout=20.0):
    deadline = time.monotonic() + timeout
    value = metric(url, name)
    while value != want and time.monotonic() < deadline:
        time.sleep(0.1)
        value = metric(url, name)
    return value


def prompt_ids(n, salt):
    # Token ids of the tiny model (vocab 512), away from the special ids at the end.
    return [3 + (i * 37 + salt * 101 + (i * i) % 13) % 480 for i in range(n)]


def complete(server, prompt, max_tokens, kv_params=None, timeout=120):
    body = {"model": "tiny", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
            "ignore_eos": True}
    if kv_params is not None:
        body["kv_transfer_params"] = kv_params
    status, text = http("POST", server.base_url + "/v1/completions", body, timeout=timeout)
    assert status == 200, f"{status}: {text}"
    return json.loads(text)


def disagg(producer, consumer, prompt, max_tokens):
    """Producer (max_tokens 1) -> consumer. Returns (producer response, consumer response)."""
    p = complete(producer, prompt, 1, {"do_remote_decode": True})
    params = p.get("kv_transfer_params")
    assert isinstance(params, dict) and params.get("do_remote_prefill") is True, p
    assert params["num_prompt_tokens"] == len(prompt)
    assert len(params["remote_block_ids"]) == (len(prompt) + BLOCK - 1) // BLOCK
    c = complete(consumer, prompt, max_tokens, params)
    return p, c


def check_same(colocated, p, c, max_tokens, what):
    assert p["choices"][0]["finish_reason"] == "length", (what, p)
    assert p["usage"]["completion_tokens"] == 1, (what, p["usage"])
    assert c["choices"][0]["finish_reason"] == "length", (what, c)
    assert c["usage"]["completion_tokens"] == max_tokens, (what, c["usage"])
    assert c["usage"]["prompt_tokens"] == colocated["usage"]["prompt_tokens"], what
    assert p["choices"][0]["text"] + c["choices"][0]["text"] == colocated["choices"][0]["text"], what


def kv_config(role, **extra):
    cfg = {"role": role, "transport": "tcp", "side_channel_host": "127.0.0.1", "side_channel_port": 0}
    cfg.update(extra)
    return json.dumps(cfg)


COMMON = ("--block-size", BLOCK, "--max-model-len", 2048, "--num-kv-blocks", 2048)


def start(serve, model_dir, role=None, **extra):
    args = list(COMMON)
    if role:
        args += ["--kv-transfer-config", kv_config(role, **extra)]
    return serve(model_dir, *args)


def start_all(serve, model_dir, **producer_extra):
    """Colocated, producer and consumer servers (started one after the other; each is waited for)."""
    return (start(serve, model_dir), start(serve, model_dir, "producer", **producer_extra),
            start(serve, model_dir, "consumer"))


# ---- tests ----

def test_disagg_matches_colocated_at_concurrency_64(serve, tiny_model_dir):
    colo, prod, cons = start_all(serve, tiny_model_dir)
    max_tokens = 6
    # Block size +-1 and a few long prompts; many short ones. 64 requests in flight at once.
    lengths = [1, 2, 15, 16, 17, 31, 32, 33, 47, 48, 49, 100, 255, 256, 257, 700, 1500, 2000]
    lengths += [1 + (i * 13) % 90 for i in range(64 - len(lengths))]
    prompts = [prompt_ids(n, i) for i, n in enumerate(lengths)]
    # A repeat of an earlier prompt: prefix-cache hits on both sides inside the batch.
    prompts[-1] = prompts[11]

    with ThreadPoolExecutor(max_workers=64) as pool:
        expected = list(pool.map(lambda p: complete(colo, p, max_tokens), prompts))
        results = list(pool.map(lambda p: disagg(prod, cons, p, max_tokens), prompts))
    for i, (prompt, want, (p, c)) in enumerate(zip(prompts, expected, results)):
        check_same(want, p, c, max_tokens, f"prompt {i} ({len(prompt)} tokens)")

    assert metric(cons.base_url, RECOMPUTES) == 0
    assert metric(cons.base_url, TRANSFERS) == len(prompts)

    # Round 2, the same prompts: prefix-cache hits on both sides (the consumer pulls only what it lacks).
    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(lambda p: disagg(prod, cons, p, max_tokens), prompts))
    for i, (prompt, want, (p, c)) in enumerate(zip(prompts, expected, results)):
        check_same(want, p, c, max_tokens, f"round 2: prompt {i} ({len(prompt)} tokens)")
        if len(prompt) >= 2 * BLOCK:
            assert c["usage"]["prompt_tokens_details"]["cached_tokens"] >= BLOCK, (i, c["usage"])
            assert p["usage"]["prompt_tokens_details"]["cached_tokens"] >= BLOCK, (i, p["usage"])
    assert metric(cons.base_url, RECOMPUTES) == 0
    # Every lease released (by the consumer's notification) and every consumer block unreferenced.
    assert wait_metric(prod.base_url, USED_BLOCKS, 0.0) == 0.0
    assert wait_metric(cons.base_url, USED_BLOCKS, 0.0) == 0.0


def test_producer_killed_before_consumer_request(serve, tiny_model_dir):
    colo, prod, cons = start_all(serve, tiny_model_dir)
    prompts = [prompt_ids(n, 900 + n) for n in (5, 16, 17, 300)]
    produced = []
    for prompt in prompts:
        p = complete(prod, prompt, 1, {"do_remote_decode": True})
        assert p["kv_transfer_params"]["do_remote_prefill"] is True
        produced.append(p)
    prod.proc.send_signal(signal.SIGKILL)
    prod.proc.wait(timeout=10)
    for prompt, p in zip(prompts, produced):
        want = complete(colo, prompt, 5)
        c = complete(cons, prompt, 5, p["kv_transfer_params"])
        check_same(want, p, c, 5, f"{len(prompt)} tokens")
    assert metric(cons.base_url, RECOMPUTES) == len(prompts)
    assert metric(cons.base_url, TRANSFERS) == 0
    assert wait_metric(cons.base_url, USED_BLOCKS, 0.0) == 0.0


def test_lease_expiry_frees_producer_blocks(serve, tiny_model_dir):
    colo = start(serve, tiny_model_dir)
    prod = start(serve, tiny_model_dir, "producer", lease_duration_s=1, transfer_timeout_s=1)
    cons = start(serve, tiny_model_dir, "consumer")
    prompt = prompt_ids(100, 42)
    p = complete(prod, prompt, 1, {"do_remote_decode": True})
    t0 = time.monotonic()
    # Pinned by the lease (the gauge is published after the engine step that answered: poll briefly).
    deadline = t0 + 0.8
    while metric(prod.base_url, USED_BLOCKS) < (100 + BLOCK - 1) // BLOCK and time.monotonic() < deadline:
        time.sleep(0.02)
    assert metric(prod.base_url, USED_BLOCKS) >= (100 + BLOCK - 1) // BLOCK
    time.sleep(max(0.0, t0 + 2.0 - time.monotonic()))
    assert wait_metric(prod.base_url, USED_BLOCKS, 0.0, timeout=5) == 0.0
    want = complete(colo, prompt, 7)
    c = complete(cons, prompt, 7, p["kv_transfer_params"])  # the lease is gone: recompute
    check_same(want, p, c, 7, "expired lease")
    assert metric(prod.base_url, LEASES_EXPIRED) == 1
    assert metric(cons.base_url, RECOMPUTES) == 1
    assert wait_metric(cons.base_url, USED_BLOCKS, 0.0) == 0.0


def test_client_abort_mid_stream_frees_blocks_on_both_sides(serve, tiny_model_dir):
    prod = start(serve, tiny_model_dir, "producer")
    cons = start(serve, tiny_model_dir, "consumer")
    prompt = prompt_ids(200, 7)
    p = complete(prod, prompt, 1, {"do_remote_decode": True})
    body = {"model": "tiny", "prompt": prompt, "max_tokens": 1800, "temperature": 0,
            "ignore_eos": True, "stream": True, "kv_transfer_params": p["kv_transfer_params"]}
    s, got = open_completion_stream("127.0.0.1", cons.port, body)
    try:
        assert got.count(b"data: ") >= 5, got[:500]
        assert metric(cons.base_url, USED_BLOCKS) > 0  # mid-stream: the request holds its blocks
        assert metric(cons.base_url, TRANSFERS) == 1  # its prompt's KV came from the producer
    finally:
        s.close()
    assert wait_metric(cons.base_url, USED_BLOCKS, 0.0) == 0.0
    assert wait_metric(prod.base_url, USED_BLOCKS, 0.0) == 0.0


def test_fingerprint_mismatch_recomputes_without_error(serve, tiny_model_dir, tandem_bin, tmp_path):
    other = tmp_path / "tiny-tied"
    subprocess.run([str(tandem_bin), "make-model", "--preset", "tiny", "--out", str(other), "--seed", "77",
                    "--tie-word-embeddings", "true"],
                   check=True, timeout=300, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    prod = start(serve, tiny_model_dir, "producer")
    cons = start(serve, other, "consumer")  # same KV layout, different model config
    colo_other = start(serve, other)
    for n in (1, 17, 120):
        prompt = prompt_ids(n, 300 + n)
        p, c = disagg(prod, cons, prompt, 5)
        assert c["choices"][0]["finish_reason"] == "length", c
        assert c["usage"]["completion_tokens"] == 5
        # The consumer's own model continues from the producer's first token (decoded text of one id).
        first = p["kv_transfer_params"]["first_token_id"]
        want = complete(colo_other, prompt + [first], 4)
        assert c["choices"][0]["text"] == want["choices"][0]["text"], n
    assert metric(cons.base_url, RECOMPUTES) == 3
    assert metric(cons.base_url, TRANSFERS) == 0
    assert wait_metric(prod.base_url, USED_BLOCKS, 0.0) == 0.0  # the consumer released the lease
    assert wait_metric(cons.base_url, USED_BLOCKS, 0.0) == 0.0
