"""The station's web app served for real (conftest's ``station_url``: uvicorn on 127.0.0.1
in a thread; urllib as the client): other websites kept out, bad filters a 400, nothing
changed by a refused request.

The whole station (microphone, model, pages in Chromium) is tests/test_station.py; this file
runs only the app over a real inspection log, so every request's answer can be checked fast.
"""

import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tapcheck.webapp import served_hosts


def call(url: str, *, data: bytes | None = None, headers: dict | None = None):
    """(status, body) of one request; a POST when there is data."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def marks_in(url: str) -> list:
    status, body = call(url + "api/inspections")
    assert status == 200
    return sorted((r["id"], r["mark"]) for r in json.loads(body))


JSON = {"Content-Type": "application/json"}


def test_another_site_cannot_mark(station_url):
    url, mark = station_url, station_url + "api/inspections/2/mark"
    body = json.dumps({"mark": "confirmed defect"}).encode()
    own = url.rstrip("/")
    # an HTML form with enctype=text/plain on any website: no preflight, so only a refusal helps
    status, text = call(mark, data=body, headers={"Origin": "http://evil.example",
                                                  "Content-Type": "text/plain"})
    assert status == 403 and "another site (http://evil.example)" in json.loads(text)["error"]
    status, text = call(mark, data=body, headers={"Content-Type": "text/plain"})
    assert status == 415 and "application/json, not 'text/plain'" in json.loads(text)["error"]
    assert call(mark, data=body, headers={})[0] == 415  # urllib's form default
    for origin in ("http://evil.example", "null", own + ".evil.example", "https" + own[4:]):
        assert call(mark, data=body, headers={**JSON, "Origin": origin})[0] == 403, origin
    assert marks_in(url) == [(1, None), (2, None)]  # nothing refused was recorded
    # the station's own page (its Origin), and scripts or curl (no Origin)
    assert call(mark, data=body, headers={**JSON, "Origin": own})[0] == 200
    status, text = call(url + "api/inspections/1/mark", data=b'{"mark": "false alarm"}',
                        headers={"Content-Type": "application/json; charset=utf-8"})
    assert status == 200 and json.loads(text)["mark"] == "false alarm"
    assert marks_in(url) == [(1, "false alarm"), (2, "confirmed defect")]


@pytest.mark.parametrize("method", ["DELETE", "PATCH", "PUT", "TRACE", "FOO"])
def test_a_method_the_station_never_takes_is_405(station_url, method):
    """DELETE or PATCH on any path answered 415, "the body must be sent as Content-Type:
    application/json", as if it could be taken with another body (QA)."""
    request = urllib.request.Request(station_url + "api/inspections/2/mark", method=method,
                                     data=b'{"mark": "false alarm"}', headers=JSON)
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("answered")
    except urllib.error.HTTPError as e:
        assert e.code == 405 and e.headers["Allow"] == "GET, HEAD, POST"
        assert json.loads(e.read())["error"] == (
            f"{method} is not a method this station answers: it serves pages with GET and "
            "takes a mark with POST")
    assert marks_in(station_url) == [(1, None), (2, None)]


def test_a_body_too_large_or_of_unknown_length_is_refused_unread(station_url):
    """A 3 GB mark body grew the station by 6 GB before its 400: the length is checked first."""
    import http.client
    from urllib.parse import urlsplit

    mark = station_url + "api/inspections/2/mark"
    status, text = call(mark, data=b" " * 20_000 + b'{"mark": "false alarm"}', headers=JSON)
    assert status == 413 and "a mark is at most 16384" in json.loads(text)["error"]
    where = urlsplit(station_url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
    # chunked, of unknown length, and claiming gigabytes: nothing of it is read
    connection.putrequest("POST", where.path + "api/inspections/2/mark")
    for key, value in {**JSON, "Transfer-Encoding": "chunked"}.items():
        connection.putheader(key, value)
    connection.endheaders()
    connection.send(b"5\r\n{\"mar\r\n")
    response = connection.getresponse()
    assert response.status == 411, response.read()
    connection.close()
    assert marks_in(station_url) == [(1, None), (2, None)]


def test_unknown_keys_in_a_mark_are_refused(station_url):
    status, text = call(station_url + "api/inspections/2/mark", headers=JSON,
                        data=b'{"mark": "false alarm", "inspector": "me"}')
    assert status == 400 and json.loads(text)["error"].startswith("unknown key 'inspector'")
    assert marks_in(station_url) == [(1, None), (2, None)]


def test_another_host_name_is_refused(station_url):
    port = station_url.rsplit(":", 1)[1].rstrip("/")
    for path in ("", "log", "api/inspections", "api/export.csv", "clips/1.wav"):
        status, text = call(station_url + path, headers={"Host": f"evil.example:{port}"})
        assert status == 400, path  # DNS rebinding: evil.example resolved to 127.0.0.1
        assert json.loads(text)["error"] == (
            f"this station does not answer for host 'evil.example:{port}' (it serves this "
            f"machine only): open {station_url}")
    assert call(station_url, headers={"Host": "127.0.0.1"})[0] == 400  # another port: 80
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
        assert call(station_url + "api/inspections", headers={"Host": host})[0] == 200, host


def test_served_hosts():
    assert served_hosts("127.0.0.1", 8321) == {"127.0.0.1:8321", "localhost:8321"}
    assert served_hosts("::1", 8321) == {"[::1]:8321", "localhost:8321"}
    assert served_hosts("127.0.0.1", 80) == {"127.0.0.1:80", "localhost:80", "127.0.0.1",
                                             "localhost"}
    # off loopback the token guards, and the station's names there cannot be listed
    assert served_hosts("0.0.0.0", 8321) is None and served_hosts("192.168.1.5", 8321) is None


def test_dates_at_the_calendars_ends_answer(station_url):
    for path in ("api/inspections", "api/export.csv"):  # were a 500 (OverflowError)
        status, text = call(station_url + path + "?since=0001-01-01&until=9999-12-31")
        assert status == 200, (path, text)
    status, text = call(station_url + "api/inspections?until=9999-12-31")
    assert [r["id"] for r in json.loads(text)] == [2, 1]
    status, text = call(station_url + "api/inspections?until=10000-01-01")
    assert status == 400 and json.loads(text)["error"].startswith("until '10000-01-01' is not")


def test_export_lists_absolute_clips_from_inside_the_folder(station_url, tmp_path):
    for inspection in (1, 2):
        assert call(station_url + f"api/inspections/{inspection}/mark", headers=JSON,
                    data=b'{"mark": "confirmed defect"}')[0] == 200
    db = sqlite3.connect(tmp_path / "inspections.sqlite")
    db.execute("UPDATE inspections SET clip = '../../../etc/passwd' WHERE id = 2")  # by hand
    db.commit()
    db.close()
    request = urllib.request.Request(station_url + "api/export.csv")
    with urllib.request.urlopen(request, timeout=10) as r:
        lines, skipped = r.read().decode().splitlines(), r.headers["X-Tapcheck-Skipped"]
    assert len(lines) == 2 and skipped == "1" and "passwd" not in "".join(lines)
    clip = Path(lines[1].split(",")[0])
    assert clip.is_absolute() and clip.is_file() and clip.is_relative_to(tmp_path.resolve())
    assert call(station_url + "clips/2.wav")[0] == 404  # served no more than exported


def test_a_row_naming_the_log_itself_serves_no_file(station_url, tmp_path):
    """A row edited to name inspections.sqlite served the database as its clip, and the reader's
    connection then took the -wal file from under the station's (QA): only .wav is served."""
    db = sqlite3.connect(tmp_path / "inspections.sqlite")
    db.execute("UPDATE inspections SET clip = 'inspections.sqlite' WHERE id = 2")
    db.commit()
    db.close()
    with urllib.request.urlopen(station_url + "clips/1.wav", timeout=10) as r:
        assert r.status == 200 and r.read(4) == b"RIFF"
    status, text = call(station_url + "clips/2.wav")
    assert status == 404 and json.loads(text)["error"] == "no clip for inspection 2"


@pytest.mark.parametrize("station_url", ["a-token-of-twenty-four-c"], indirect=True)
def test_the_bearer_scheme_is_read_in_any_case(station_url):
    """RFC 9110 (11.1): an authentication scheme is case-insensitive; `bearer TOKEN` got 401."""
    token = "a-token-of-twenty-four-c"
    assert call(station_url + "api/inspections")[0] == 401
    for scheme in ("Bearer", "bearer", "BEARER"):
        assert call(station_url + "api/inspections",
                    headers={"Authorization": f"{scheme} {token}"})[0] == 200, scheme
    basic = {"Authorization": f"Basic {token}"}
    assert call(station_url + "api/inspections", headers=basic)[0] == 401
    # every credential given is tried: a stale cookie or a wrong ?token= beside the right one
    # got 401, and which of two ?token= counted depended on their order (QA)
    stale = {"Cookie": f"tapcheck_token_{station_url.rsplit(':', 1)[1].strip('/')}=stale-one"}
    assert call(station_url + "api/inspections",
                headers={**stale, "Authorization": f"Bearer {token}"})[0] == 200
    for query in (f"?token={token}&token=wrong", f"?token=wrong&token={token}"):
        assert call(station_url + "api/inspections" + query)[0] == 200, query
    assert call(station_url + "api/inspections?token=wrong", headers=stale)[0] == 401


def test_another_sites_page_cannot_fetch_from_the_station(station_url):
    """Three <img> of the export on a page of another site (another port of this machine is
    "same-site") froze a station for 24 s (QA): such requests are refused from their
    Sec-Fetch headers, which browsers send to localhost; a link followed still opens a page."""
    for site in ("cross-site", "same-site"):
        for mode in ("no-cors", "cors"):
            status, text = call(station_url + "api/export.csv",
                                headers={"Sec-Fetch-Site": site, "Sec-Fetch-Mode": mode})
            assert status == 403, (site, mode)
            assert json.loads(text)["error"] == (
                f"requests from another site's pages are refused: open the station's own "
                f"pages ({station_url})")
        assert call(station_url + "log", headers={"Sec-Fetch-Site": site,
                                                   "Sec-Fetch-Mode": "navigate",
                                                   "Sec-Fetch-Dest": "document"})[0] == 200
        # a page elsewhere loading the station in an <iframe> navigates too (review)
        assert call(station_url + "api/export.csv", headers={
            "Sec-Fetch-Site": site, "Sec-Fetch-Mode": "navigate",
            "Sec-Fetch-Dest": "iframe"})[0] == 403
    for site in ("same-origin", "none"):  # the station's own pages; an address typed in
        assert call(station_url + "api/inspections",
                    headers={"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "cors"})[0] == 200


def test_an_export_runs_beside_the_live_page(station_url, tmp_path):
    """An export of a long log held the event loop (8 s for 200 000 rows), and the live
    page and its verdicts waited (QA): the live page answers while an export is still
    running. (The fixture's station has no model, so its state is not asked for.)"""
    import threading
    import time

    db = sqlite3.connect(tmp_path / "inspections.sqlite")
    (row,) = db.execute("SELECT time, board, model, model_path, score, threshold, verdict, "
                        "clip, latency_ms, device FROM inspections WHERE id = 1").fetchall()
    db.executemany("INSERT INTO inspections (time, board, model, model_path, score, threshold, "
                   "verdict, clip, latency_ms, device) VALUES (?,?,?,?,?,?,?,?,?,?)",
                   [row] * 60_000)
    db.executemany("INSERT INTO marks (inspection, mark, time) VALUES (?, 'false alarm', ?)",
                   [(i, row[0]) for i in range(1, 60_002)])
    db.commit()
    db.close()
    done = []
    export = threading.Thread(target=lambda: done.append(call(station_url + "api/export.csv")))
    export.start()
    time.sleep(0.3)  # the export is under way (it takes seconds)
    assert call(station_url)[0] == 200
    answered_first = not done
    export.join(timeout=120)
    assert done and done[0][0] == 200 and done[0][1].count("\n") == 60_002
    assert answered_first


def test_a_hand_edited_row_is_a_clear_answer_and_marks_nothing(station_url, tmp_path):
    """A clip path with a NUL byte or past the system's length was a 500 and a traceback on
    the log page, the clip and the picture; a row with score 'abc' was marked though the
    answer was 400 (QA)."""
    db = sqlite3.connect(tmp_path / "inspections.sqlite")
    db.execute("UPDATE inspections SET clip = ? WHERE id = 1", ("clips/a\x00b.wav",))
    db.execute("UPDATE inspections SET clip = ? WHERE id = 2", ("x" * 5000 + ".wav",))
    db.commit()
    status, text = call(station_url + "api/inspections")
    assert status == 200 and [r["picture"] for r in json.loads(text)] == [None, None]
    for inspection in (1, 2):
        assert call(station_url + f"clips/{inspection}.wav")[0] == 404
        assert call(station_url + f"explanations/{inspection}.png")[0] == 404
    db.execute("UPDATE inspections SET score = 'abc' WHERE id = 2")
    db.commit()
    status, text = call(station_url + "api/inspections/2/mark", headers=JSON,
                        data=b'{"mark": "false alarm"}')
    assert status == 400 and "score 'abc'" in json.loads(text)["error"]
    assert db.execute("SELECT count(*) FROM marks").fetchone() == (0,)
    db.close()


def test_pictures_are_served_from_inside_the_inspection_folder_only(station_url, tmp_path):
    """An explanations folder linked elsewhere had any file there served as a picture."""
    db = sqlite3.connect(tmp_path / "inspections.sqlite")
    (clip,) = db.execute("SELECT clip FROM inspections WHERE id = 1").fetchone()
    db.close()
    outside = tmp_path.parent / "outside"
    picture = outside / Path(clip).relative_to("clips").with_suffix(".png")
    picture.parent.mkdir(parents=True)
    picture.write_bytes(b"SECRET-not-in-inspections")
    (tmp_path / "explanations").symlink_to(outside)
    status, body = call(station_url + "explanations/1.png")
    assert status == 404 and "SECRET" not in body


def test_an_upgrade_request_is_answered_as_http_without_a_word(station_url, caplog):
    """The station serves no websocket; uvicorn put two warnings per upgrade request in its
    terminal, the second advising `pip install 'uvicorn[standard]'` (QA)."""
    import http.client
    import logging

    logger = logging.getLogger("uvicorn.error")  # uvicorn's loggers do not reach the root's
    logger.addHandler(caplog.handler)
    try:
        # http.client, not urllib: urllib puts its own "Connection: close" in
        host, port = station_url.split("/")[2].split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", "/", headers={
            "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        status = connection.getresponse().status
        connection.close()
    finally:
        logger.removeHandler(caplog.handler)
    assert status == 200
    assert [r.getMessage() for r in caplog.records] == []


@pytest.mark.parametrize("station_url", ["a-token-of-twenty-four-c"], indirect=True)
def test_a_mark_that_fails_says_so_on_the_log_page(station_url, browser, tmp_path):
    """A stale token (the station restarted with a new one) answered the mark with a plain-text
    401, which the page read as JSON: it threw, the status line kept "2 inspection(s)", and
    nothing said the mark was not made (QA)."""
    page = browser.new_page()
    try:
        page.goto(station_url + "log?token=a-token-of-twenty-four-c")
        page.wait_for_selector("tr[data-id='1']")
        assert page.text_content("#status") == "2 inspection(s)"
        page.context.clear_cookies()  # as a restarted station's new token leaves the page
        page.click("tr[data-id='1'] button[data-mark='false alarm']")
        page.wait_for_function("document.getElementById('status').textContent.includes('not')")
        assert page.text_content("#status") == (
            "tap 1 not marked: 401: this station needs its token: open the address tapcheck "
            "station printed (…?token=…)")
        assert "failed" in page.get_attribute("#status", "class")
    finally:
        page.close()
    db = sqlite3.connect(tmp_path / "inspections.sqlite")
    assert db.execute("SELECT count(*) FROM marks").fetchone() == (0,)
    db.close()


def test_a_taps_warnings_are_on_the_log_page(station_url, browser, tmp_path):
    """A clipped tap's "the verdict may be off" was on the live page only: the log page, read
    later, gave its verdict as sound (QA). Its warnings come with its row, and show beside it
    as text (a warning holds a file name: never markup)."""
    from datetime import datetime

    import numpy as np

    from tapcheck.inspections import InspectionLog

    said = "tap at 10:05:00: clipped for 1.9 ms; the verdict may be off <b>x</b>"
    with InspectionLog(tmp_path, create=True) as log:
        log.append(np.zeros(4410, np.float32), sr=44100,
                   when=datetime(2025, 5, 2, 10, 5).astimezone(), board=3, model="m",
                   model_path="m.pt", score=0.1, threshold=0.2, verdict="NORMAL",
                   warnings=[said])
    status, body = call(station_url + "api/inspections")
    assert status == 200
    assert {r["id"]: r["warnings"] for r in json.loads(body)} == {1: [], 2: [], 3: [said]}
    page = browser.new_page()
    try:
        page.goto(station_url + "log")
        page.wait_for_selector("tr[data-id='3'] .warned")
        assert page.text_content("tr[data-id='3'] .warned") == "\u26a0 " + said
        assert page.query_selector("tr[data-id='3'] b") is None
        assert page.query_selector_all("tr[data-id='1'] .warned") == []
    finally:
        page.close()


def test_a_page_too_slow_to_read_has_its_stream_ended_to_reconnect():
    """A page whose 200 queued events were not read was dropped without its stream ending: it
    got keep-alives only, for good, still reading "live" (QA). Its stream now ends, so the
    browser reconnects and the page reloads the state."""
    import asyncio

    from tapcheck.station import Events

    async def run():
        events = Events()
        slow, quick = events.subscribe(), events.subscribe()
        for i in range(201):
            events.publish("verdict", {"i": i})
            if not quick.empty():
                await quick.get()
            await asyncio.sleep(0)
        return events, slow, quick

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:  # a thread of its own: Playwright's loop runs in this one
        events, slow, quick = pool.submit(asyncio.run, run()).result(timeout=30)
    assert slow not in events.queues and quick in events.queues
    assert slow.qsize() == 1 and slow.get_nowait() is None  # the end of its stream


@pytest.mark.parametrize("station_url", ["a-token-of-twenty-four-c"], indirect=True)
def test_the_token_cookie_is_the_stations_own(station_url):
    """Cookies are not kept apart by port: two stations on one machine took each other's, and
    every request of the first was then 401 (QA). The cookie's name holds the port."""
    port = station_url.rstrip("/").rsplit(":", 1)[1]
    request = urllib.request.Request(station_url + "?token=a-token-of-twenty-four-c")
    with urllib.request.urlopen(request, timeout=10) as r:
        cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(f"tapcheck_token_{port}=a-token-of-twenty-four-c;")
    own = {"Cookie": f"tapcheck_token_{port}=a-token-of-twenty-four-c"}
    assert call(station_url + "api/inspections", headers=own)[0] == 200
    other = {"Cookie": "tapcheck_token_1=a-token-of-twenty-four-c"}  # another station's
    assert call(station_url + "api/inspections", headers=other)[0] == 401


def test_a_refusal_on_every_interface_names_an_address_another_machine_can_open(tmp_path):
    """On 0.0.0.0 the 403 said "open the station's own pages (http://0.0.0.0:8321/)", an
    address no machine can open; the start line names the machine (web QA)."""
    import asyncio
    import socket
    import threading

    from tapcheck.inspections import InspectionLog
    from tapcheck.marks import MarkBook
    from tapcheck.station import Station
    from tapcheck.webapp import make_app

    InspectionLog(tmp_path, create=True).close()
    station, marks = Station(None, tmp_path, explain=False), MarkBook(tmp_path)
    app = make_app(station, marks, token="a-token-of-twenty-four-c", address=("0.0.0.0", 8321))
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/api/inspections", "query_string": b"",
             "raw_path": b"/api/inspections", "root_path": "", "scheme": "http",
             "http_version": "1.1", "server": ("10.0.0.1", 8321), "client": ("10.0.0.2", 50000),
             "headers": [(b"host", b"10.0.0.1:8321"), (b"sec-fetch-site", b"cross-site"),
                         (b"sec-fetch-mode", b"cors")]}
    # on a thread of its own: an event loop another test left in this one refuses asyncio.run
    thread = threading.Thread(target=lambda: asyncio.run(app(scope, receive, send)))
    try:
        thread.start()
        thread.join(timeout=30)
    finally:
        station.close()
        marks.close()
    assert sent[0]["status"] == 403
    assert json.loads(b"".join(m.get("body", b"") for m in sent[1:]))["error"].endswith(
        f"open the station's own pages (http://{socket.gethostname()}:8321/)")


def test_every_file_a_page_names_is_served(station_url):
    """Each page's stylesheet, scripts and icon: a page without an icon had the browser ask for
    /favicon.ico, a 404, on every page load."""
    import re

    kinds = {"css": "text/css", "js": "text/javascript", "svg": "image/svg+xml"}
    for page in ("", "log"):
        status, html = call(station_url + page)
        assert status == 200
        names = re.findall(r'(?:href|src)="/(static/[^"]+)"', html)
        assert any(n.endswith(".css") for n in names) and any(n.endswith(".js") for n in names)
        assert re.search(r'<link rel="icon" href="/static/[^"]+"', html), page
        for name in names:
            with urllib.request.urlopen(station_url + name, timeout=10) as r:
                assert r.status == 200 and r.read(), name
                assert r.headers["Content-Type"].split(";")[0] == kinds[name.rsplit(".")[-1]]
