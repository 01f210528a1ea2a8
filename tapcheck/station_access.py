"""Where the station is served and to whom: the address it listens on and prints, and the token
every request must carry when it is served beyond this machine (``tapcheck station``)."""

from __future__ import annotations

import os
import secrets
import socket

from .errors import ConfigError, ParameterError, StorageError
from .validate import STATION_TOKEN, TOKEN_FIX, TOKEN_PROBLEM

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_host(host: str, token: str | None) -> str | None:
    """The token every request must carry: None on loopback without one; a new random one when
    another address is served and none is configured."""
    if host in LOOPBACK:
        return token or None
    return token or secrets.token_urlsafe(18)


def address(host: str, port: int, *, token: str | None = None) -> str:
    """The address to open the station at, as printed at start.

    Bound to every interface (0.0.0.0, ::), the station is meant for other machines, which
    cannot open ``http://0.0.0.0:8321/``: the machine's name stands in for it.
    """
    import ipaddress

    try:
        anywhere = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        anywhere = False
    shown = socket.gethostname() if anywhere else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or one clear error (port in use, address not on this machine)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (TypeError, UnicodeError) as e:  # a NUL or a label IDNA refuses, from a --config
        sock.close()
        raise ParameterError(f"cannot listen on {host!r}: it is not an address ({e})",
                             fix="pass --host with an address of this machine (or fix "
                                 "[station] host in the config)") from None
    except OSError as e:
        sock.close()
        if e.errno == 98:  # EADDRINUSE
            raise StorageError(f"port {port} on {host} is in use (another station?)",
                               fix="stop the other program, or pass --port N (or set [station] "
                                   "port in the config)") from None
        # the address may come from a --config's [station] host: name both places
        raise ParameterError(f"cannot listen on {host}:{port} ({e.strerror})",
                             fix="pass --host with an address of this machine (or fix "
                                 "[station] host in the config)") from None
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


TOKEN = STATION_TOKEN  # a token travels in the page's address and a cookie (validate.py)


def default_token(config_token: str, *, config_path: str | os.PathLike | None = None
                  ) -> str | None:
    """The token from $TAPCHECK_STATION_TOKEN or the config (empty: none).

    Parameters
    ----------
    config_token : str
    config_path : str or Path, optional
        The config file ``config_token`` came from, named in the error as every other bad
        setting's file is (the token's pattern is checked here, not where the file is read, so
        that the environment's token is checked alike).

    Raises
    ------
    ParameterError
        Shorter than 16 characters or not URL-safe (the token itself is not shown); a
        :class:`ConfigError` naming ``config_path`` when the config's token is.
    """
    from_env = os.environ.get("TAPCHECK_STATION_TOKEN")
    token = from_env or config_token or None
    if token is not None and not TOKEN.fullmatch(token):
        where = "$TAPCHECK_STATION_TOKEN" if from_env else "[station] token"
        error = ParameterError if from_env else ConfigError
        raise error(f"{where} {TOKEN_PROBLEM}", path=None if from_env else config_path,
                    fix=TOKEN_FIX)
    return token
