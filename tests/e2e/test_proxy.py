"""End-to-end tests of `tandem proxy` with real processes on loopback (tiny model, CPU).

- 1P1D through the proxy gives the same greedy output as one colocated server (completions and chat,
  streaming and not), and usage counts every completion token once;
- 2P2D: requests spread over every instance;
- a prefill instance killed during a run: every request still completes;
- a client disconnect mid-stream frees the blocks on both instances (read from their /metrics);
- the 1P1D example script with a short benchmark exits 0 with 0 failed requests and leaves no process.

Needs TANDEM_BIN (set by ./test.sh). Every wait is bounded.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
from pathlib import Path

import pytest

from http_json import http
from raw_stream import open_completion_stream

REPO = Path(__file__).resolve().parents[2]
TANDEM_BIN = os.environ.get("TANDEM_BIN", "")
EXAMPLES = REPO / "examples" / "disagg_prefill"

pytestmark = pytest.mark.skipif(not TANDEM_BIN or not Path(TANDEM_BIN).exists(),
                                reason="TANDEM_BIN is not set to a built tandem binary")


# ---- helpers (self-contained: real processes, ephemeral ports, bounded waits) ----

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    def __init__(self, name, args, log_dir):
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        self.log = open(self.log_path, "w")
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)

    def tail(self, n=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def kill(self, sig=signal.SIGKILL):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass
        try:
            self.p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait(timeout=15)
        self.log.close()


def wait_healthy(proc, url, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.p.poll() is not None:
            raise RuntimeError(f"{proc.name} exited ({proc.p.returncode}):\n{proc.tail()}")
        try:
            status, _ = http("GET", url + "/health", timeout=2)
            if status == 200:
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{proc.name} not healthy after {timeout}s:\n{proc.tail()}")


class Fleet:
    """Starts engine instances and a proxy; stops everything on close()."""

    def __init__(self, model, log_dir):
        self.model = model
        self.log_dir = log_dir
        self.procs = []

    def serve(self, name, role=None):
        port = free_port()
        args = [TANDEM_BIN, "serve", str(self.model), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
        if role:
            args += ["--kv-transfer-config", str(EXAMPLES / "configs" / f"{role}.yaml")]
        p = Proc(name, args, self.log_dir)
        self.procs.append(p)
        p.url = f"http://127.0.0.1:{port}"
        return p

    def proxy(self, prefills=(), decodes=(), colocated=(), extra=()):
        port = free_port()
        args = [TANDEM_BIN, "proxy", "--host", "127.0.0.1", "--port", str(port), "--health-interval", "0.5"]
        for p in prefills:
            args += ["--prefill", p.url]
        for d in decodes:
            args += ["--decode", d.url]
        for c in colocated:
            args += ["--colocated", c.url]
        args += list(extra)
        p = Proc("proxy", args, self.log_dir)
        self.procs.append(p)
        p.url = f"http://127.0.0.1:{port}"
        wait_healthy(p, p.url, timeout=60)
        return p

    def wait_all(self, procs):
        for p in procs:
            wait_healthy(p, p.url)

    def close(self):
        for p in reversed(self.procs):
            p.kill(signal.SIGTERM)


@pytest.fixture
def fleet(tiny_model_dir, tmp_path):
    f = Fleet(tiny_model_dir, tmp_path)
    yield f
    f.close()


def model_id(url):
    status, body = http("GET", url + "/v1/models")
    assert status == 200, body
    return json.loads(body)["data"][0]["id"]


def sse_events(body):
    out = []
    for block in body.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                payload = line[len("data: "):]
                out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def stream_text(events, chat):
    text = ""
    for e in events:
        if not isinstance(e, dict):
            continue
        assert "error" not in e, e
        for c in e.get("choices", []):
            text += (c.get("delta", {}).get("content") or "") if chat else c.get("text", "")
    return text


def generate(url, model, chat, stream, max_tokens=12, prompt="The quick brown fox", extra=None):
    body = {"model": model, "max_tokens": max_tokens, "temperature": 0, "stream": stream}
    if chat:
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if stream:
        body["stream_options"] = {"include_usage": True}
    body.update(extra or {})
    path = "/v1/chat/completions" if chat else "/v1/completions"
    status, text = http("POST", url + path, body, timeout=120)
    assert status == 200, text
    if not stream:
        j = json.loads(text)
        c = j["choices"][0]
        return (c["message"]["content"] if chat else c["text"]), j["usage"], [j["id"]]
    events = sse_events(text)
    assert events and events[-1] == "[DONE]", text[-500:]
    usages = [e["usage"] for e in events if isinstance(e, dict) and e.get("usage")]
    assert len(usages) == 1, f"expected exactly one usage object, got {usages}"
    ids = {e["id"] for e in events if isinstance(e, dict) and "id" in e}
    return stream_text(events, chat), usages[0], sorted(ids)


def metric_values(url, name_part):
    status, body = http("GET", url + "/metrics", timeout=10)
    assert status == 200
    vals = []
    for line in body.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^(\S+?)(\{[^}]*\})?\s+(\S+)$", line)
        if m and name_part in m.group(1):
            vals.append((m.group(1) + (m.group(2) or ""), float(m.group(3))))
    return vals


# ---- tests ----

@pytest.mark.parametrize("chat", [False, True], ids=["completions", "chat"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_1p1d_matches_colocated(fleet, chat, stream):
    colo = fleet.serve("colocated")
    pre = fleet.serve("prefiller", "prefiller")
    dec = fleet.serve("decoder", "decoder")
    fleet.wait_all([colo, pre, dec])
    proxy = fleet.proxy([pre], [dec])
    model = model_id(proxy.url)
    for prompt, max_tokens in [("The quick brown fox", 12), ("Once upon a time, in a land far away,", 20),
                               ("1 2 3", 1)]:
        want, want_usage, _ = generate(colo.url, model, chat, stream, max_tokens, prompt, {"ignore_eos": True})
        got, got_usage, ids = generate(proxy.url, model, chat, stream, max_tokens, prompt, {"ignore_eos": True})
        assert got == want, f"proxy output differs for {prompt!r}"
        assert got_usage["completion_tokens"] == want_usage["completion_tokens"] == max_tokens
        assert got_usage["prompt_tokens"] == want_usage["prompt_tokens"]
        assert len(ids) == 1
    # Requests really went through the disaggregated path.
    prefill_count = sum(v for _, v in metric_values(proxy.url, "tandem_proxy_prefill_seconds_count"))
    assert prefill_count >= 3
    fallbacks = sum(v for _, v in metric_values(proxy.url, "tandem_proxy_prefill_fallbacks_total"))
    assert fallbacks == 0


def test_colocated_routing(fleet):
    a = fleet.serve("colocated0")
    b = fleet.serve("colocated1")
    fleet.wait_all([a, b])
    proxy = fleet.proxy(colocated=[a, b], extra=["--routing", "round_robin"])
    model = model_id(proxy.url)
    want, _, _ = generate(a.url, model, False, True)
    for _ in range(4):
        got, _, _ = generate(proxy.url, model, False, True)
        assert got == want
    counts = [v for k, v in metric_values(proxy.url, "tandem_proxy_instance_requests_total")]
    assert counts == [2.0, 2.0]


def run_concurrently(fn, n):
    results, errors = [None] * n, []

    def worker(i):
        try:
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"request {i}: {e!r}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "requests did not finish in time"
    return results, errors


def test_2p2d_spreads_load(fleet):
    ps = [fleet.serve(f"prefiller{i}", "prefiller") for i in range(2)]
    ds = [fleet.serve(f"decoder{i}", "decoder") for i in range(2)]
    fleet.wait_all(ps + ds)
    proxy = fleet.proxy(ps, ds)
    model = model_id(proxy.url)
    results, errors = run_concurrently(
        lambda i: generate(proxy.url, model, False, True, 16, f"prompt number {i} " * (1 + i % 5)), 16)
    assert not errors, errors
    per_instance = dict(metric_values(proxy.url, "tandem_proxy_instance_requests_total"))
    assert len(per_instance) == 4
    for k, v in per_instance.items():
        assert v >= 2, f"instance {k} got {v} of 16 requests: {per_instance}"


def test_prefill_killed_during_run(fleet):
    ps = [fleet.serve(f"prefiller{i}", "prefiller") for i in range(2)]
    d = fleet.serve("decoder", "decoder")
    fleet.wait_all(ps + [d])
    proxy = fleet.proxy(ps, [d])
    model = model_id(proxy.url)
    want, _, _ = generate(d.url, model, False, True, 24, "a steady prompt", {"ignore_eos": True})

    def one(i):
        time.sleep(0.05 * i)
        text, usage, _ = generate(proxy.url, model, False, True, 24, "a steady prompt", {"ignore_eos": True})
        assert text == want
        assert usage["completion_tokens"] == 24
        return True

    killer = threading.Timer(0.3, lambda: ps[0].kill(signal.SIGKILL))
    killer.start()
    results, errors = run_concurrently(one, 24)
    killer.join()
    assert not errors, errors
    assert all(results)
    assert ps[0].p.poll() is not None


def running_and_kv(url):
    running = sum(v for k, v in metric_values(url, "num_requests_running"))
    kv = [v for k, v in metric_values(url, "kv_cache_usage")]
    return running, (max(kv) if kv else 0.0)


def test_client_disconnect_frees_blocks(fleet):
    pre = fleet.serve("prefiller", "prefiller")
    dec = fleet.serve("decoder", "decoder")
    fleet.wait_all([pre, dec])
    proxy = fleet.proxy([pre], [dec])
    model = model_id(proxy.url)
    host, port = "127.0.0.1", int(proxy.url.rsplit(":", 1)[1])
    body = {"model": model, "prompt": "tell me a very long story ", "max_tokens": 1500,
            "ignore_eos": True, "stream": True}
    s, got = open_completion_stream(host, port, body)
    assert got.count(b"data: ") >= 5, got[:500]
    running, _ = running_and_kv(dec.url)
    assert running >= 1
    s.close()
    deadline = time.time() + 20
    while time.time() < deadline:
        if running_and_kv(dec.url) == (0, 0.0) and running_and_kv(pre.url)[0] == 0:
            break
        time.sleep(0.2)
    assert running_and_kv(dec.url) == (0, 0.0), metric_values(dec.url, "kv_cache_usage")
    assert running_and_kv(pre.url)[0] == 0
    # The producer's blocks are released once the decoder has pulled them (before the disconnect).
    deadline = time.time() + 20
    while time.time() < deadline and running_and_kv(pre.url)[1] != 0.0:
        time.sleep(0.2)
    assert running_and_kv(pre.url)[1] == 0.0
    disconnects = sum(v for _, v in metric_values(proxy.url, "tandem_proxy_client_disconnects_total"))
    assert disconnects == 1


def processes_with(marker):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = (Path("/proc") / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and "pytest" not in cmd:
            found.append((pid, cmd))
    return found


def test_example_script_bench(tiny_model_dir, tmp_path):
    ports = {"PREFILL_PORT": free_port(), "DECODE_PORT": free_port(), "PROXY_PORT": free_port()}
    env = dict(os.environ, TANDEM_BIN=TANDEM_BIN, MODEL=str(tiny_model_dir), LOG_DIR=str(tmp_path / "logs"),
               DEVICE="cpu", **{k: str(v) for k, v in ports.items()})
    r = subprocess.run([str(EXAMPLES / "disagg_example_1p1d.sh"), "--bench", "--dataset-name", "random",
                        "--random-input-len", "32", "--random-output-len", "8", "--num-prompts", "8",
                        "--request-rate", "inf", "--ignore-eos"],
                       env=env, capture_output=True, text=True, timeout=600, start_new_session=True)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert re.search(r"Successful requests:\s+8\b", out), out[-4000:]
    assert re.search(r"Failed requests:\s+0\b", out), out[-4000:]
    assert "=" * 50 in out
    time.sleep(1)
    for name, port in ports.items():
        left = processes_with(f"--port {port}")
        assert not left, f"{name} process left behind: {left}"
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on {name} {port}"
