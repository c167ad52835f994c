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
