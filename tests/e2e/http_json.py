"""A plain HTTP request for e2e tests (urllib, bounded by a timeout): JSON body in, (status, text) out,
error statuses returned rather than raised."""
import json
import urllib.error
import urllib.request


def http(method, url, body=None, timeout=60, headers=None):
    """Sends `body` (a dict, or None for no body) as JSON; returns (status, response text)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
