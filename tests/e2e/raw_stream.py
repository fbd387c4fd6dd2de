"""Raw-socket streaming requests for e2e tests that must disconnect mid-stream (an HTTP client library
would hide the socket)."""
import json
import socket
import time


def open_completion_stream(host, port, body, min_events=5, timeout=60):
    """POSTs `body` (a dict) to /v1/completions on a raw socket and reads until `min_events` SSE events
    arrived or `timeout` seconds passed. Returns (socket, bytes received); the caller closes the socket."""
    data = json.dumps(body).encode()
    s = socket.create_connection((host, port), timeout=30)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    got = b""
    deadline = time.monotonic() + timeout
    while got.count(b"data: ") < min_events and time.monotonic() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    return s, got
