"""Shared fixtures for end-to-end tests: real `tandem` processes on loopback with ephemeral ports.

Fixtures:
  tandem_bin       path of the binary (env TANDEM_BIN, default build/bin/tandem)
  tiny_model_dir   a session-wide tiny model written by `tandem make-model --preset tiny`
  serve            a factory: serve(model_dir, *extra_args, name=...) starts `tandem serve` on a free
                   port, waits for /health (timeout), and returns a ServeProcess (base_url, port, log
                   path, stop()). Every process is stopped at teardown (SIGTERM, wait, SIGKILL) and its
                   log tail is printed when the test failed.
No test may hang: every wait here has a timeout.
"""
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
READY_RE = re.compile(r"ready on (http://[^\s]+)")


def _bin_path():
    return Path(os.environ.get("TANDEM_BIN", str(REPO / "build" / "bin" / "tandem")))


@pytest.fixture(scope="session")
def tandem_bin():
    path = _bin_path()
    if not path.exists():
        pytest.fail(f"tandem binary not found at {path} (set TANDEM_BIN)")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tandem_bin, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-model")
    subprocess.run([str(tandem_bin), "make-model", "--preset", "tiny", "--out", str(out)],
                   check=True, timeout=300, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return out


class ServeProcess:
    """One `tandem serve` process started by the `serve` fixture."""

    def __init__(self, args, log_path, env=None):
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        self.base_url = None
        self.port = None

    def log_text(self):
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, timeout=120.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tandem serve exited with {self.proc.returncode}:\n{self.log_text()[-4000:]}")
            if self.base_url is None:
                m = READY_RE.search(self.log_text())
                if m:
                    self.base_url = m.group(1).rstrip(")")
                    self.port = int(self.base_url.rsplit(":", 1)[1])
            if self.base_url is not None:
                try:
                    with urllib.request.urlopen(self.base_url + "/health", timeout=2) as r:
                        if r.status == 200:
                            return self
                except (urllib.error.URLError, ConnectionError, OSError):
                    pass
            time.sleep(0.1)
        raise TimeoutError(f"tandem serve not healthy after {timeout}s:\n{self.log_text()[-4000:]}")

    def stop(self, timeout=20.0):
        """SIGTERM, wait, then SIGKILL. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def serve(tandem_bin, tmp_path, request):
    started = []

    def start(model_dir, *extra_args, name="tiny", device="cpu", ready_timeout=120.0, env=None):
        args = [str(tandem_bin), "serve", str(model_dir), "--host", "127.0.0.1", "--port", "0",
                "--served-model-name", name, "--device", device, *map(str, extra_args)]
        p = ServeProcess(args, tmp_path / f"serve-{len(started)}.log", env=env)
        started.append(p)
        return p.wait_ready(ready_timeout)

    yield start
    failed = any(getattr(request.node, "rep_" + w, None) is not None and getattr(request.node, "rep_" + w).failed
                 for w in ("setup", "call"))
    for p in started:
        code = p.stop()
        if failed:
            print(f"\n---- tandem serve log tail ({' '.join(p.args)}; exit {code}) ----")
            print(p.log_text()[-6000:])


@pytest.fixture(scope="module")
def shared_tiny_server(tandem_bin, tiny_model_dir, tmp_path_factory):
    """One server for a whole test module (for tests that only read)."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    args = [str(tandem_bin), "serve", str(tiny_model_dir), "--host", "127.0.0.1", "--port", "0",
            "--served-model-name", "tiny", "--device", "cpu"]
    p = ServeProcess(args, log)
    try:
        p.wait_ready()
        yield p
    finally:
        code = p.stop()
        if code != 0:
            print(f"\n---- shared tandem serve exited {code}; log tail ----\n{p.log_text()[-6000:]}")
