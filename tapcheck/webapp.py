"""The station's web app (Starlette): the live page, the log page and their JSON endpoints.

Every asset is a file of this package (``tapcheck/web``), served from a fixed list: no page needs
the internet, and no request names a file. Clips and explanation pictures are looked up by their
inspection id and served only from inside the inspection folder. With a token, every request must
carry it (``?token=``, which also sets a cookie for the page's own requests, or an
``Authorization: Bearer`` header); without it the answer is 401 with a message.

On loopback (the default, no token) other websites are kept out by :class:`RequestGuard`: a
request naming another host (DNS rebinding) is refused with 400, and a request that changes
anything must be ``application/json`` (415) and, if it says where it comes from, come from the
station's own pages (403).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import re
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import (FileResponse, JSONResponse, PlainTextResponse, Response,
                                 StreamingResponse)
from starlette.routing import Route

from .errors import TapcheckError
from .marks import VERDICTS, Filter
from .station_access import address as station_address

WEB = Path(__file__).with_name("web")
ASSETS = {"ask.js": "text/javascript", "live.js": "text/javascript", "log.js": "text/javascript",
          "station.css": "text/css", "icon.svg": "image/svg+xml"}
COOKIE = "tapcheck_token"  # and the port: cookies are not kept apart by port, and two
# stations on one machine took each other's, every request of the first then 401 (QA)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def make_app(station, marks, *, token: str | None, address: tuple[str, int]) -> Starlette:
    """The app for one station and its log's marks, served on ``address`` (host, port)."""
    h = Handlers(station, marks)
    routes = [
        Route("/", h.live), Route("/log", h.log_page), Route("/static/{name}", h.asset),
        Route("/api/state", h.state), Route("/events", h.events),
        Route("/api/inspections", h.inspections),
        Route("/api/inspections/{id:inspection}/mark", h.mark, methods=["POST"]),
        Route("/api/export.csv", h.export), Route("/clips/{id:inspection}.wav", h.clip),
        Route("/explanations/{id:inspection}.png", h.picture),
    ]
    app = Starlette(routes=routes)
    if token:
        app.add_middleware(TokenGate, token=token, cookie=f"{COOKIE}_{address[1]}")
    # added last, so outermost: a foreign host is refused before the token is even looked at
    # named as at start: on 0.0.0.0 by the machine's name, an address another machine can open
    # (a 403 told "open http://0.0.0.0:8321/", web QA)
    app.add_middleware(RequestGuard, hosts=served_hosts(*address),
                       home=station_address(*address))
    return app


def served_hosts(host: str, port: int) -> set[str] | None:
    """The ``Host`` headers a station bound to ``host``:``port`` answers; None: any.

    On loopback only this machine's own names for it (the address itself and ``localhost``): a
    website whose name an attacker points at 127.0.0.1 (DNS rebinding) sends its own name and is
    refused. On any other address the token guards every request, and the names the station is
    reached by (a LAN name, an IP, a proxy's) cannot be listed, so any is answered.
    """
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: bind() is given addresses ("localhost" is bound as 127.0.0.1)
        loopback = host == "localhost"
    if not loopback:
        return None
    names = {_url_host(host), "localhost"}
    hosts = {f"{name}:{port}" for name in names}
    return hosts | names if port == 80 else hosts  # browsers leave out the default port


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


#: the largest request body taken (a mark's JSON is tens of bytes)
MAX_BODY_BYTES = 16_384


class Handlers:
    """The endpoints; every answer to bad input is a 4xx with a message."""

    def __init__(self, station, marks):
        self.station, self.marks = station, marks

    async def live(self, request: Request) -> Response:
        return FileResponse(WEB / "live.html", media_type="text/html")

    async def log_page(self, request: Request) -> Response:
        return FileResponse(WEB / "log.html", media_type="text/html")

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            return _error(404, f"no asset {name!r}")
        return FileResponse(WEB / name, media_type=ASSETS[name])

    async def state(self, request: Request) -> Response:
        return JSONResponse(self.station.snapshot())

    async def events(self, request: Request) -> Response:
        events = self.station.events
        queue = events.subscribe()

        async def stream():
            try:
                yield "retry: 1000\n\n"
                while not events.closed:
                    try:
                        message = await asyncio.wait_for(queue.get(), timeout=15.0)
                    except asyncio.TimeoutError:
                        yield ": keep-alive\n\n"  # proxies and browsers keep the stream open
                        continue
                    if message is None:  # the server is stopping
                        return
                    yield message
            finally:
                events.unsubscribe(queue)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    async def inspections(self, request: Request) -> Response:
        try:
            rows = await run_in_threadpool(self._rows, _filter(request.query_params))
        except (TapcheckError, ValueError) as e:
            return _error(400, str(e))
        return JSONResponse(rows)

    def _rows(self, flt: Filter) -> list[dict]:
        """The log page's rows with their pictures: in a worker thread, as every request that
        reads the log or the disk at length (an export of 200 000 rows held the event loop
        8 s, and the live page's verdicts with it; QA)."""
        rows = self.marks.rows(flt)
        for r in rows:  # the row's clip names its picture: no log lookup per row (500 rows
            # took 0.67 s that way, 0.14 s with the clip given)
            clip = r.get("clip") if isinstance(r.get("clip"), str) else None
            r["picture"] = (f"/explanations/{r['id']}.png" if self.station.picture(r["id"], clip)
                            else None)
        return rows

    async def mark(self, request: Request) -> Response:
        usage = "the body must be JSON like {\"mark\": \"false alarm\"}"
        try:
            body = await request.json()
        except (ValueError, RecursionError):  # RecursionError: [[[[... nested 10^5 deep
            return _error(400, usage)
        except ClientDisconnect:  # gone mid-body (or too slow: http_deadline): nothing marked,
            # no one to answer; it printed "Exception in ASGI application" and a traceback
            return Response(status_code=400)
        except asyncio.CancelledError:  # the station stops with the body still coming:
            # nothing marked; uvicorn printed each such request's traceback at Ctrl-C (QA)
            return Response(status_code=503)
        if not isinstance(body, dict) or not isinstance(body.get("mark"), str):
            return _error(400, usage)
        if set(body) != {"mark"}:  # a typo'd or future key is not silently dropped
            unknown = sorted(k for k in body if k != "mark")
            return _error(400, f"unknown key {unknown[0]!r}: {usage}")
        if _inspection_id(request) is None:
            return _error(404, f"no inspection {request.path_params['id']}")
        try:
            row = await run_in_threadpool(self.marks.mark, request.path_params["id"],
                                          body["mark"])
        except TapcheckError as e:
            return _error(404 if "no inspection" in str(e) else 400, str(e))
        self.station.events.publish("marked", {"id": row["id"], "mark": row["mark"]})
        return JSONResponse(row)

    async def clip(self, request: Request) -> Response:
        path = None if _inspection_id(request) is None else await run_in_threadpool(
            self.marks.clip_file, request.path_params["id"])
        if path is None:
            return _error(404, f"no clip for inspection {request.path_params['id']}")
        return FileResponse(path, media_type="audio/wav")

    async def picture(self, request: Request) -> Response:
        path = None if _inspection_id(request) is None else await run_in_threadpool(
            self.station.picture, request.path_params["id"])
        if path is None:
            return _error(404, f"no explanation for inspection {request.path_params['id']}")
        return FileResponse(path, media_type="image/png")

    async def export(self, request: Request) -> Response:
        skipped: list[int] = []
        try:
            text = await run_in_threadpool(
                self.marks.export_csv, _filter(request.query_params, limit=1_000_000), skipped)
        except (TapcheckError, ValueError) as e:
            return _error(400, str(e))
        # marked rows whose clip is gone or outside the log's folder: left out, and counted here
        return PlainTextResponse(text, media_type="text/csv", headers={
            "Content-Disposition": 'attachment; filename="marked-clips.csv"',
            "X-Tapcheck-Skipped": str(len(skipped))})


class _InspectionId(Convertor):
    """An inspection id in a path: at most 19 digits (SQLite's integers). Starlette's ``int``
    takes any count, and int() of more than 4300 digits raises ValueError, a 500."""

    regex = "[0-9]{1,19}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("inspection", _InspectionId())


def _inspection_id(request: Request) -> int | None:
    """The path's inspection id, or None past SQLite's integers (no such row; asked of SQLite,
    it raised OverflowError, a 500)."""
    value = request.path_params["id"]
    return value if 0 <= value < 2**63 else None


def _filter(query, *, limit: int = 500) -> Filter:
    board = query.get("board") or None
    verdict = query.get("verdict") or None
    if verdict is not None and verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    # ASCII digits only ("²" and "١" are digits to str.isdigit), and few: a board number, not a
    # 100 000-digit string whose int() fails with Python's own message
    if board is not None and not re.fullmatch(r"[0-9]{1,9}", board):
        shown = board if len(board) <= 20 else board[:20] + "..."
        raise ValueError(f"board must be a number (up to 9 digits), not {shown!r}")
    return Filter(board=None if board is None else int(board), verdict=verdict,
                  since=query.get("since") or None, until=query.get("until") or None,
                  limit=limit)


class TokenGate:
    """Pure ASGI middleware (streams pass through untouched): refuse requests without the
    token with 401; a correct ``?token=`` also sets a cookie for the page's later requests."""

    def __init__(self, app, *, token: str, cookie: str = COOKIE):
        self.app, self.token, self.cookie = app, token.encode(), cookie

    def _right(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(errors="replace"), self.token)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        # the scheme is case-insensitive (RFC 9110, 11.1): "bearer TOKEN" was refused
        scheme, _, credentials = request.headers.get("authorization", "").strip().partition(" ")
        # every credential given is tried: a stale cookie (a script's session from before a
        # restart) or a wrong ?token= beside the right Bearer header got 401 (QA)
        queried = any([self._right(g) for g in request.query_params.getlist("token")])
        if not (queried or self._right(request.cookies.get(self.cookie, ""))
                or self._right(credentials.strip() if scheme.lower() == "bearer" else "")):
            response = PlainTextResponse(
                "401: this station needs its token: open the address tapcheck station printed "
                "(…?token=…)", status_code=401)
            return await response(scope, receive, send)
        if not queried:
            return await self.app(scope, receive, send)

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                cookie = (f"{self.cookie}={self.token.decode()}; Path=/; HttpOnly; "
                          "SameSite=Strict").encode()
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"set-cookie", cookie)]}
            await send(message)

        return await self.app(scope, receive, send_with_cookie)


#: methods that change nothing (the routes answer nothing else but POST)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RequestGuard:
    """Pure ASGI middleware: keep other websites out of a station without a token.

    A page on any site can POST a ``text/plain`` form to 127.0.0.1 without asking (no CORS
    preflight), and a site whose name resolves to 127.0.0.1 can read the answers (DNS
    rebinding). So: a ``Host`` not in ``hosts`` gets 400; a request another site's page makes
    (its ``Sec-Fetch-Site``), other than following a link (not in an iframe), gets 403; one that
    changes anything gets 415 unless it is ``application/json`` (which a form cannot send, and a
    script on another site only after a preflight this app never grants), and 403 if its
    ``Origin`` is another site's.
    """

    def __init__(self, app, *, hosts: set[str] | None, home: str):
        self.app, self.hosts, self.home = app, hosts, home

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if self.hosts is not None and host.lower() not in self.hosts:
            shown = host if len(host) <= 60 else host[:60] + "..."
            response = _error(400, f"this station does not answer for host {shown!r} (it "
                                   f"serves this machine only): open {self.home}")
            return await response(scope, receive, send)
        site = headers.get("sec-fetch-site")
        followed = (headers.get("sec-fetch-mode") == "navigate"
                    and headers.get("sec-fetch-dest", "document") == "document")
        if site in ("cross-site", "same-site") and not followed:  # an <iframe> too (review)
            # a page elsewhere (another port of this machine is "same-site") fetching from the
            # station, in <img>, <audio> or a script: three <img> of the export froze a station
            # for 24 s (QA). A link followed to the station (a navigation) still opens it;
            # browsers send these headers to localhost and HTTPS only
            response = _error(403, "requests from another site's pages are refused: open the "
                                   f"station's own pages ({self.home})")
            return await response(scope, receive, send)
        if scope["method"] not in SAFE_METHODS | {"POST"}:
            # a mark is the only change the station takes: DELETE or PATCH anywhere got "the
            # body must be sent as Content-Type: application/json", as if it could be (QA)
            response = _error(405, f"{scope['method']} is not a method this station answers: "
                                   "it serves pages with GET and takes a mark with POST")
            response.headers["Allow"] = "GET, HEAD, POST"
            return await response(scope, receive, send)
        if scope["method"] not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin is not None and origin.lower() != f"{scope['scheme']}://{host}".lower():
                shown = origin if len(origin) <= 60 else origin[:60] + "..."
                response = _error(403, f"requests from another site ({shown}) are refused: "
                                       "mark taps on the station's own log page")
                return await response(scope, receive, send)
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                response = _error(415, "the body must be sent as Content-Type: "
                                       f"application/json, not {kind or 'none'!r}")
                return await response(scope, receive, send)
            # before the body is read: a 3 GB body grew the station by 6 GB before its 400. A
            # mark is a few bytes; a chunked body of unknown length is not taken
            length = headers.get("content-length", "")
            if not length.isdigit():
                response = _error(411, "the body must be sent with its Content-Length")
                return await response(scope, receive, send)
            if int(length) > MAX_BODY_BYTES:
                response = _error(413, f"the body is {int(length)} bytes; a mark is at most "
                                       f"{MAX_BODY_BYTES}")
                return await response(scope, receive, send)
        return await self.app(scope, receive, send)
