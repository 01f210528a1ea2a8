"""The station's page server closes a connection whose request does not arrive whole in time
(a half-sent request line, a trickled body), and never cuts a whole request's long response.
Served for real (conftest's ``station_url``: uvicorn on 127.0.0.1), raw sockets as clients."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest

from tapcheck.http_deadline import RequestDeadlineProtocol

DEADLINE_S = 0.5


@pytest.fixture
def short_deadline(monkeypatch):
    monkeypatch.setattr(RequestDeadlineProtocol, "deadline_s", DEADLINE_S)


def _connect(url: str) -> socket.socket:
    host, port = url.split("//")[1].rstrip("/").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _closed_after(conn: socket.socket) -> float:
    """Seconds until the server closes ``conn`` (recv returns b''; at most 10 s)."""
    started = time.monotonic()
    while conn.recv(4096):
        pass
    return time.monotonic() - started


def _read_until(conn: socket.socket, marker: bytes) -> bytes:
    got = b""
    while marker not in got:
        chunk = conn.recv(4096)
        assert chunk, f"closed before {marker!r}: {got!r}"
        got += chunk
    return got


def _post_head(url: str, length: int) -> bytes:
    host = url.split("//")[1].rstrip("/")
    return (f"POST /api/inspections/2/mark HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


def test_a_half_sent_request_is_closed_at_the_deadline(short_deadline, station_url):
    """It was held open for as long as the client liked (a thousand of them took every file
    descriptor the station had)."""
    with _connect(station_url) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1")  # and nothing more
        assert DEADLINE_S * 0.8 < _closed_after(conn) < DEADLINE_S + 5


def test_a_trickled_body_is_closed_and_marks_nothing_and_prints_no_traceback(
        capfd, short_deadline, station_url):
    """A body that stops half way: closed at the deadline, no mark; the app's ClientDisconnect
    printed "Exception in ASGI application" and a traceback on the station's console. (capfd
    first: uvicorn's log handler takes the stderr of the moment its config is built.)"""
    body = json.dumps({"mark": "false alarm"}).encode()
    with _connect(station_url) as conn:
        conn.sendall(_post_head(station_url, len(body)) + body[:5])
        assert _closed_after(conn) < DEADLINE_S + 5
    with _connect(station_url) as conn:  # and one that hangs up itself
        conn.sendall(_post_head(station_url, len(body)) + body[:5])
    # the server has handled the hang-up once a new connection's request is served after it
    with urllib.request.urlopen(station_url + "api/inspections", timeout=10) as r:
        assert [row["mark"] for row in json.loads(r.read())] == [None, None]
    time.sleep(DEADLINE_S)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception in ASGI application" not in err, err


def test_a_kept_alive_connection_has_a_deadline_for_its_next_request(short_deadline,
                                                                     station_url):
    """After a whole request and its answer, half of a second one on the same connection is
    closed at the deadline (uvicorn's keep-alive timer stops at its first byte)."""
    host = station_url.split("//")[1].rstrip("/")
    with _connect(station_url) as conn:
        conn.sendall(f"GET /api/inspections HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert _read_until(conn, b"}]").startswith(b"HTTP/1.1 200")
        conn.sendall(b"GET /api/inspections HTTP/1.1\r\nHo")
        assert _closed_after(conn) < DEADLINE_S + 3


@pytest.mark.parametrize("upgrade", [None, "h2c"])
def test_a_whole_request_is_not_cut_however_long_its_answer(short_deadline, station_url,
                                                            upgrade):
    """The page's event stream lasts all shift: the deadline covers receiving a request only.
    A mark made after several deadlines still arrives on the stream, also when the request
    asked for an upgrade the server declines (`curl --http2` sends Upgrade: h2c; h11 then
    holds the client in MIGHT_SWITCH_PROTOCOL, not DONE, and the stream was cut); and a
    kept-alive connection's second request is served."""
    host = station_url.split("//")[1].rstrip("/")
    extra = f"Connection: Upgrade\r\nUpgrade: {upgrade}\r\n" if upgrade else ""
    with _connect(station_url) as stream:
        stream.sendall(f"GET /events HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
        _read_until(stream, b"retry: 1000")
        time.sleep(DEADLINE_S * 3)
        body = json.dumps({"mark": "false alarm"}).encode()
        request = urllib.request.Request(station_url + "api/inspections/2/mark", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 200
        _read_until(stream, b"marked")
    with _connect(station_url) as conn:
        for _ in range(2):
            conn.sendall(f"GET /api/inspections HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            assert _read_until(conn, b"}]").startswith(b"HTTP/1.1 200")


def test_a_request_the_parser_refuses_gets_its_400_and_prints_nothing(capfd, station_url):
    """A page of any website (an <img> of a 1 MB address) printed uvicorn's "Invalid HTTP
    request received." in the station's terminal once per request (web QA). (capfd first:
    uvicorn's log handler takes the stderr of the moment its config is built.)"""
    for _ in range(3):
        with _connect(station_url) as conn:
            conn.sendall(b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_until(conn, b"\r\n").startswith(b"HTTP/1.1 400")
    time.sleep(0.2)
    assert "Invalid HTTP request" not in capfd.readouterr().err
