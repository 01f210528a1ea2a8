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
