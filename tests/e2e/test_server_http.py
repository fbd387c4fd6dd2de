"""Raw HTTP against `tandem serve`: malformed input, limits, slow and vanishing clients, many streams,
metrics, graceful shutdown and flag errors."""
import asyncio
import json
import re
import socket
import subprocess
import time
import urllib.request

import pytest


def http(base, method, path, body=None, headers=None, timeout=30):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def metric(base, name):
    _, text = http(base, "GET", "/metrics")
    m = re.search(r"^" + re.escape(name) + r"\{[^}]*\} ([0-9.e+-]+)$", text.decode(), re.M)
    assert m, f"{name} missing from /metrics"
    return float(m.group(1))


def wait_for(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


@pytest.fixture(scope="module")
def base(shared_tiny_server):
    return shared_tiny_server.base_url


def test_malformed_json_and_wrong_types(base):
    for body in (b"{not json", b"[1,2]", b""):
        code, out = http(base, "POST", "/v1/completions", body)
        assert code == 400, body
        err = json.loads(out)["error"]
        assert set(err) >= {"message", "type", "param", "code"}
    code, out = http(base, "POST", "/v1/completions", {"model": "tiny", "prompt": "x", "max_tokens": "ten"})
    assert code == 400 and "max_tokens" in json.loads(out)["error"]["message"]
    code, out = http(base, "POST", "/v1/chat/completions", {"model": "tiny", "messages": "hi"})
    assert code == 400 and "messages" in json.loads(out)["error"]["message"]
    code, _ = http(base, "GET", "/no/such/route")
    assert code == 404


def test_huge_body_is_413(base):
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000000000\r\n\r\n")
        reply = s.recv(4096).decode(errors="replace")
    assert reply.startswith("HTTP/1.1 413")


def test_slow_client_is_dropped(serve, tiny_model_dir):
    srv = serve(tiny_model_dir, "--http-read-timeout", "1")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\n")  # never finishes the request
        t0 = time.monotonic()
        assert s.recv(1) == b""  # the server closed the connection
        assert time.monotonic() - t0 < 8
    assert http(srv.base_url, "GET", "/health")[0] == 200


def success_count(base, reason):
    _, text = http(base, "GET", "/metrics")
    m = re.search(r'^tandem:request_success_total\{[^}]*finished_reason="' + reason + r'"\} ([0-9.e+-]+)$',
                  text.decode(), re.M)
    assert m, "request_success_total missing"
    return float(m.group(1))


def test_disconnect_mid_stream_frees_blocks(base):
    host, port = base.removeprefix("http://").split(":")
    aborted_before = success_count(base, "abort")
    body = json.dumps({"model": "tiny", "prompt": "tell me a long story", "max_tokens": 1500,
                       "ignore_eos": True, "stream": True}).encode()
    s = socket.create_connection((host, int(port)), timeout=30)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
              + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = b""
    while b"data:" not in got:
        got += s.recv(4096)
    assert metric(base, "tandem:kv_cache_used_blocks") > 0  # the request holds blocks while streaming
    s.close()
    assert wait_for(lambda: metric(base, "tandem:kv_cache_used_blocks") == 0
                    and metric(base, "tandem:num_requests_running") == 0, timeout=30)
    assert success_count(base, "abort") == aborted_before + 1  # aborted, not run to max_tokens


def test_metrics_names(base):
    http(base, "POST", "/v1/completions", {"model": "tiny", "prompt": "x", "max_tokens": 2})
    _, text = http(base, "GET", "/metrics")
    text = text.decode()
    for name in ("tandem:num_requests_running", "tandem:num_requests_waiting", "tandem:kv_cache_usage_perc",
                 "tandem:prefix_cache_queries_total", "tandem:prefix_cache_hits_total",
                 "tandem:num_preemptions_total", "tandem:prompt_tokens_total", "tandem:generation_tokens_total",
                 "tandem:request_success_total", "tandem:time_to_first_token_seconds_bucket",
                 "tandem:inter_token_latency_seconds_bucket", "tandem:e2e_request_latency_seconds_bucket",
                 "tandem:request_queue_time_seconds_bucket", "tandem:kv_cache_used_blocks",
                 "tandem:kv_cache_free_blocks"):
        assert name in text, name
    assert 'finished_reason="length"' in text


def test_small_endpoints(base):
    code, out = http(base, "POST", "/tokenize", {"model": "tiny", "prompt": "hello"})
    assert code == 200
    tok = json.loads(out)
    assert tok["count"] == len(tok["tokens"]) > 0
    code, out = http(base, "POST", "/detokenize", {"model": "tiny", "tokens": tok["tokens"]})
    assert code == 200 and "hello" in json.loads(out)["prompt"]
    assert http(base, "GET", "/ping")[0] == 200
    assert "version" in json.loads(http(base, "GET", "/version")[1])
    assert json.loads(http(base, "GET", "/v1/models")[1])["data"][0]["id"] == "tiny"


async def _stream_one(host, port, i):
    reader, writer = await asyncio.open_connection(host, port)
    body = json.dumps({"model": "tiny", "prompt": f"request {i}", "max_tokens": 2, "stream": True}).encode()
    writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    return b"data: [DONE]" in data


def test_many_concurrent_streams(base):
    host, port = base.removeprefix("http://").split(":")
    n = 1000

    async def main():
        sem = asyncio.Semaphore(n)

        async def one(i):
            async with sem:
                return await _stream_one(host, int(port), i)
        return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), timeout=90)

    results = asyncio.run(main())
    assert sum(results) == n
    assert wait_for(lambda: metric(base, "tandem:kv_cache_used_blocks") == 0, timeout=30)


def test_sigterm_finishes_in_flight_and_exits_zero(serve, tiny_model_dir):
    srv = serve(tiny_model_dir)
    body = json.dumps({"model": "tiny", "prompt": "x", "max_tokens": 20, "ignore_eos": True}).encode()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
              + str(len(body)).encode() + b"\r\n\r\n" + body)
    time.sleep(0.05)
    code = srv.stop(timeout=30)
    reply = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert code == 0


@pytest.mark.parametrize("args,flag", [(["--no-such-flag"], "--no-such-flag"), (["--port", "abc"], "--port"),
                                       (["--load-format", "weird"], "--load-format"),
                                       (["--device", "tpu"], "--device")])
def test_bad_flags_exit_2(tandem_bin, tiny_model_dir, args, flag):
    r = subprocess.run([str(tandem_bin), "serve", str(tiny_model_dir), *args], capture_output=True, timeout=60, text=True)
    assert r.returncode == 2, r.stderr
    assert flag in r.stderr
