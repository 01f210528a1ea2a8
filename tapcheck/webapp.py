"""The station's web app (Starlette): the live page, the log page and their JSON endpoints.

Every asset is a file of this package (``tapcheck/web``), served from a fixed list: no page needs
the internet, and no request names a file. Clips and explanation pictures are looked up by their
inspection id and served only from inside the inspection folder. With a token, every request must
carry it (``?token=``, which also sets a cookie for the page's own requests, or an
``Authorization: Bearer`` header); without it the answer is 401 with a message.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from pathlib import Path

from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import (FileResponse, JSONResponse, PlainTextResponse, Response,
                                 StreamingResponse)
from starlette.routing import Route

from .errors import TapcheckError
from .marks import VERDICTS, Filter

WEB = Path(__file__).with_name("web")
ASSETS = {"live.js": "text/javascript", "log.js": "text/javascript", "station.css": "text/css"}
COOKIE = "tapcheck_token"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def make_app(station, marks, *, token: str | None) -> Starlette:
    """The app for one station and its log's marks."""
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
        app.add_middleware(TokenGate, token=token)
    return app


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
            rows = self.marks.rows(_filter(request.query_params))
        except (TapcheckError, ValueError) as e:
            return _error(400, str(e))
        for r in rows:
            r["picture"] = (f"/explanations/{r['id']}.png" if self.station.picture(r["id"])
                            else None)
        return JSONResponse(rows)

    async def mark(self, request: Request) -> Response:
        usage = "the body must be JSON like {\"mark\": \"false alarm\"}"
        try:
            body = await request.json()
        except (ValueError, RecursionError):  # RecursionError: [[[[... nested 10^5 deep
            return _error(400, usage)
        if not isinstance(body, dict) or not isinstance(body.get("mark"), str):
            return _error(400, usage)
        if _inspection_id(request) is None:
            return _error(404, f"no inspection {request.path_params['id']}")
        try:
            row = self.marks.mark(request.path_params["id"], body["mark"])
        except TapcheckError as e:
            return _error(404 if "no inspection" in str(e) else 400, str(e))
        self.station.events.publish("marked", {"id": row["id"], "mark": row["mark"]})
        return JSONResponse(row)

    async def clip(self, request: Request) -> Response:
        path = None if _inspection_id(request) is None else self.marks.clip_file(
            request.path_params["id"])
        if path is None:
            return _error(404, f"no clip for inspection {request.path_params['id']}")
        return FileResponse(path, media_type="audio/wav")

    async def picture(self, request: Request) -> Response:
        path = None if _inspection_id(request) is None else self.station.picture(
            request.path_params["id"])
        if path is None:
            return _error(404, f"no explanation for inspection {request.path_params['id']}")
        return FileResponse(path, media_type="image/png")

    async def export(self, request: Request) -> Response:
        try:
            text = self.marks.export_csv(_filter(request.query_params, limit=1_000_000))
        except (TapcheckError, ValueError) as e:
            return _error(400, str(e))
        return PlainTextResponse(text, media_type="text/csv", headers={
            "Content-Disposition": 'attachment; filename="marked-clips.csv"'})


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

    def __init__(self, app, *, token: str):
        self.app, self.token = app, token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        given = (request.query_params.get("token") or request.cookies.get(COOKIE)
                 or request.headers.get("authorization", "").removeprefix("Bearer ").strip())
        if not hmac.compare_digest(given.encode(), self.token):
            response = PlainTextResponse(
                "401: this station needs its token: open the address tapcheck station printed "
                "(…?token=…)", status_code=401)
            return await response(scope, receive, send)
        if "token" not in request.query_params:
            return await self.app(scope, receive, send)

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                cookie = (f"{COOKIE}={self.token.decode()}; Path=/; HttpOnly; "
                          "SameSite=Strict").encode()
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"set-cookie", cookie)]}
            await send(message)

        return await self.app(scope, receive, send_with_cookie)
