"""Malformed requests to the worker get a JSON error reply, never a handler traceback and a dropped connection."""
import json
import socket

import pytest

from test_worker_http import worker  # noqa: F401 (fixture)


@pytest.mark.parametrize("length", ["abc", "-5", "1e3"])
def test_unreadable_content_length_is_a_400(worker, length):  # noqa: F811
    home, url = worker
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"POST /v1/logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
                  f"Content-Length: {length}\r\n\r\n{{}}\n".encode())
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), reply
    assert json.loads(body)["error"] == f"Content-Length '{length}' is not a number of bytes"


def test_unknown_paths_share_one_metrics_label(worker):  # noqa: F811
    import urllib.error
    import urllib.request

    home, url = worker
    for i in range(5):
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{url}/scan-{i}?x={i}", timeout=10)
    with urllib.request.urlopen(url + "/healthz", timeout=10):
        pass
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    assert 'monitor_http_requests_total{code="404",path="other"} 5.0' in text
    assert 'path="/healthz"' in text and "scan-" not in text
