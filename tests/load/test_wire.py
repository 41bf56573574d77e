"""authload's users' HTTP client (authload.load.wire) against real servers: the answer
whole, twice from one connection pool, no answer as status 0 with its cause, an unasked-for
compressed answer decoded. (In a fresh interpreter: the client is geventhttpclient, which
Locust's gevent patching serves.)"""

from __future__ import annotations

import gzip
import http.server
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from authload.mock.server import EmbeddedMock
from tests.helpers import locust_child

BODY = {"message": "ok", "padding": "x" * 200}


def child_answers_and_failures(mock_url: str, gzip_url: str, closed_url: str) -> None:
    from authload.load.wire import Wire

    wire = Wire(timeout_s=5.0)
    body = json.dumps({"phone": "79990000001", "password": "1111"}).encode()
    first = wire.send("POST", mock_url, "/counterparty/login", body, {"Token": "t"})
    again = wire.send("POST", mock_url, "/counterparty/login", body, {"Token": "t"})
    assert first.reply.status_code == again.reply.status_code != 0
    assert json.loads(first.reply.content)  # the whole answer, JSON
    assert first.reply.headers is not None and "content-type" in first.reply.headers
    assert first.response_time_ms > 0 and first.start_time > 1.7e9
    zipped = wire.send("GET", gzip_url, "/any", None, {})
    assert (zipped.reply.status_code, json.loads(zipped.reply.content)) == (200, BODY)
    refused = wire.send("POST", closed_url, "/x", b"{}", {}).reply
    assert refused.status_code == 0 and isinstance(refused.error, ConnectionRefusedError)
    assert refused.content == b""
    wire.close()


class _Gzipped(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        data = gzip.compress(json.dumps(BODY).encode())
        self.send_response(200)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def gzip_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gzipped)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_answers_whole_decoded_and_failures_as_status_zero(gzip_url: str) -> None:
    with EmbeddedMock() as mock:
        closed = f"http://127.0.0.1:{_closed_port()}"
        result = locust_child.run_child(
            __name__, "child_answers_and_failures", mock.url, gzip_url, closed
        )
    assert result.returncode == 0, result.stderr[-3000:]
