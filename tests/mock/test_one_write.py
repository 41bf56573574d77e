"""The mock's HTTP protocol (authload.mock.one_write) on a real socket: each answer whole and
in order on a kept-alive connection, heads reused only where they are the same, HEAD answered
with its head alone, and a connection the client closes closed after its answer."""

from __future__ import annotations

import json
import socket

from authload.mock.server import EmbeddedMock


def _request(method: str, path: str, body: bytes = b"", close: bool = False) -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    if body:
        head.append("Content-Type: application/json")
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _answers(sock: socket.socket, count: int) -> list[tuple[str, dict[str, str], bytes]]:
    """``count`` answers read off ``sock``: status line, headers, body (Content-Length)."""
    data, found = b"", []
    sock.settimeout(10)
    while len(found) < count:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            lines = data[:end].decode("latin-1").split("\r\n")
            headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
            size = int(headers.get("content-length", "0"))
            if len(data) >= end + 4 + size:
                found.append((lines[0], headers, data[end + 4 : end + 4 + size]))
                data = data[end + 4 + size :]
                continue
        chunk = sock.recv(65536)
        assert chunk, f"closed after {len(found)} answers"
        data += chunk
    return found


def test_answers_in_order_on_one_connection(mock_server: EmbeddedMock) -> None:
    host, port = mock_server.url.removeprefix("http://").split(":")
    login = json.dumps({"phone": "79990000001", "password": "1111"}).encode()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(_request("GET", "/healthz") + _request("GET", "/no/such/path"))
        sock.sendall(_request("GET", "/healthz") + _request("POST", "/counterparty/login", login))
        answers = _answers(sock, 4)
        assert [a[0].split(" ", 2)[1] for a in answers[:3]] == ["200", "404", "200"]
        assert answers[0][2] == answers[2][2] and answers[0][1] == answers[2][1]
        assert json.loads(answers[1][2])  # the 404's own message, not the health answer
        assert answers[3][0].startswith("HTTP/1.1 ") and answers[3][1]["content-type"]
        sock.sendall(_request("HEAD", "/healthz"))
        sock.sendall(_request("GET", "/healthz", close=True))
        head, last = _answers_head_then_one(sock)
        assert head.startswith("HTTP/1.1 ") and last[0].endswith("200 OK")
        assert last[1].get("connection") == "close"
        assert sock.recv(1) == b""  # closed by the mock after the answer


def _answers_head_then_one(sock: socket.socket) -> tuple[str, tuple[str, dict[str, str], bytes]]:
    """A HEAD's answer (a head, no body whatever its Content-Length), then one whole answer."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    end = data.index(b"\r\n\r\n")
    head, rest = data[:end].decode("latin-1").split("\r\n")[0], data[end + 4 :]
    while b"\r\n\r\n" not in rest:
        rest += sock.recv(65536)
    end = rest.index(b"\r\n\r\n")
    lines = rest[:end].decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    body = rest[end + 4 :]
    while len(body) < int(headers.get("content-length", "0")):
        body += sock.recv(65536)
    return head, (lines[0], headers, body)
