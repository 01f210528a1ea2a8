"""A deadline for each HTTP request to arrive whole, for the station's page server.

uvicorn times out only the idle time *between* requests (``timeout_keep_alive``, reset by every
byte received): a client that sends half a request line, or trickles a body, holds its
connection and a file descriptor for as long as it likes, and a thousand of them left the
station no descriptor for a tap's clip. ASGI middleware cannot help, since it runs only once
the headers are in. :class:`RequestDeadlineProtocol` wraps uvicorn's own h11 protocol (the
approach of xorbitsai/inference#5213): a connection whose request (line, headers and body) is
not all received within :data:`REQUEST_DEADLINE_S` of its first byte being awaited is closed.
Only slow *requests* are cut: a client that opens many connections, each sending a whole
request (the event stream) or never reading its answers, is a proxy's to limit.
The deadline is disarmed once the request is whole, so the page's event stream, a response that
lasts all shift, is never cut; it is armed again for the next request on a kept-alive
connection.
"""

from __future__ import annotations

import logging
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

#: seconds a client has to send one whole request: the page's own requests are a few hundred
#: bytes on a local network (milliseconds); a mark's body is at most 16 kB
REQUEST_DEADLINE_S = 10.0


#: the client's h11 states once its request is whole (DONE; MIGHT_SWITCH_PROTOCOL: a whole
#: request with an Upgrade header, as `curl --http2` sends, DONE only once the answer starts)
#: or nothing more will be read (MUST_CLOSE: HTTP/1.0; CLOSED; ERROR)
_WHOLE = (h11.DONE, h11.MIGHT_SWITCH_PROTOCOL, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)


class RequestDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request does not arrive whole within
    ``deadline_s`` (:data:`REQUEST_DEADLINE_S`)."""

    deadline_s = REQUEST_DEADLINE_S

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self._deadline = None
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.deadline_s, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            # abort, not close: close waits to send what is buffered (a 413 already answered)
            # to a client that may never read it, and keeps the descriptor meanwhile. The app
            # waiting for the rest of a body gets http.disconnect (connection_lost)
            self.transport.abort()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state in _WHOLE:
            self._disarm()

    def handle_websocket_upgrade(self, event) -> None:
        self._disarm()  # the connection is another protocol's from here on
        super().handle_websocket_upgrade(event)

    def _unsupported_upgrade_warning(self) -> None:
        """Nothing said: the station serves no websocket (``ws="none"``) and answers an upgrade
        request as plain HTTP, through its guards. uvicorn warned of each, two lines, the second
        advising ``pip install 'uvicorn[standard]'``, and any web page could fill the station's
        terminal with them (QA)."""

    def on_response_complete(self) -> None:
        # armed before the base class reads a pipelined next request, which may disarm it
        if not self.transport.is_closing():
            self._arm()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def uvicorn_config(app, **options: Any) -> uvicorn.Config:
    """uvicorn's settings for serving ``app`` with a deadline for each request.

    Parameters
    ----------
    app : ASGI application
        What to serve (:func:`tapcheck.webapp.make_app`).
    **options
        Any other ``uvicorn.Config`` argument (``log_level``, ``lifespan``, ...).

    Returns
    -------
    uvicorn.Config
        With ``http`` set to :class:`RequestDeadlineProtocol`, and no websocket protocol.
    """
    config = uvicorn.Config(app, http=RequestDeadlineProtocol, ws="none", **options)
    error_log = logging.getLogger("uvicorn.error")  # configured by the line above
    if not any(isinstance(f, _Unsaid) for f in error_log.filters):
        error_log.addFilter(_Unsaid())
    return config


class _Unsaid(logging.Filter):
    """uvicorn's warning of each request its parser refuses, left out: the client gets its 400,
    and a page of any website (an <img> of a 1 MB address) printed one line in the station's
    terminal per request (web QA), as the websocket warnings did."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Invalid HTTP request received."
