"""Reading a config file: ``--config FILE``, TOML over the defaults of :mod:`tapcheck.config`.

Whatever a file holds is one line naming it: missing, a folder, too big, binary, UTF-16 or
Latin-1, not TOML, nested too deep, or a table, key or value tapcheck does not know (refused
by the settings' own rules, :mod:`tapcheck.validate`), and the rules a model file's stored
settings are not held to (the microphone's rate, the strike detector's).
"""

from __future__ import annotations

import codecs
import os
import tomllib
from pathlib import Path

from .config import CONFIGS, Config, default_toml
from .errors import ConfigError
from .file_kinds import refuse_special
from .live_settings import check_device_rate, check_stream


def own_configs() -> list[str]:
    """The names of tapcheck's own configs (``new-boards`` for ``configs/new-boards.toml``)."""
    return sorted(p.stem for p in CONFIGS.glob("*.toml"))


def config_file(path: str | os.PathLike) -> Path:
    """The file a ``--config`` names: ``path`` itself, or, where no such file is, tapcheck's own
    config of that name (``new-boards`` or ``new-boards.toml``: :data:`CONFIGS`). A user of an
    installed tapcheck has no checkout whose ``configs/new-boards.toml`` to give (QA)."""
    path = Path(path)
    if os.path.lexists(path) or len(path.parts) != 1 or path.suffix not in ("", ".toml"):
        return path
    own = CONFIGS / f"{path.stem}.toml"
    return own if own.is_file() else path


def _missing_config_fix(path: Path) -> str:
    """Where the config a user named is, when it is one of tapcheck's own: ``--config
    configs/new-boards.toml`` outside the checkout was told to "start from
    configs/default.toml", a file as missing as the first."""
    own = CONFIGS.parent / path
    names = ", ".join(own_configs())
    if (not path.is_absolute() and own.suffix == ".toml" and own.is_file()
            and own.resolve().parent == CONFIGS):  # configs/*.toml only, not any file there
        return f"check the path; tapcheck's own is --config {own.stem} ({own})"
    if names:
        return (f"check the path, or give one of tapcheck's own by name ({names}: e.g. "
                "--config new-boards)")
    return "check the path"


#: the largest config file read: settings are a few kB (configs/default.toml is about 4)
MAX_CONFIG_BYTES = 1_000_000


def load_config(path: str | Path | None = None) -> Config:
    """Read a TOML config over the defaults.

    Parameters
    ----------
    path : str or Path, optional
        A TOML file with any of the ``[audio]``, ``[features]``, ``[train]``, ``[record]`` and
        ``[stream]`` tables, or the name of one of tapcheck's own (:func:`config_file`).
        ``None`` gives the defaults.

    Raises
    ------
    ConfigError
        The file is missing, not TOML, or has a table, key or value tapcheck does not know.
    """
    if path is None:
        return Config()
    path = config_file(path)
    refuse_special(path, ConfigError, fix=f"pass a .toml file such as {default_toml()}")
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:  # read whole, a 20 GB (sparse) file ran out of memory
            raise ConfigError(f"is {size / 1e6:.0f} MB; a config file is a few kB", path=path,
                              fix=f"pass a .toml settings file such as {default_toml()}")
        raw = path.read_bytes()
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Notepad's "Unicode"
            raise ConfigError("is UTF-16 text, not UTF-8", path=path,
                              fix="save it as UTF-8, as TOML files are")
        if b"\0" in raw[:4096]:  # a WAV or a model file given as --config: it was "saved as
            # Latin-1?", or "not valid TOML" when its first bytes happen to be UTF-8
            raise ConfigError("is a binary file, not a config file", path=path,
                              fix=f"pass a .toml settings file such as {default_toml()}")
        # -sig: a file saved by Windows' Notepad starts with a byte-order mark (as manifests may)
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except ConfigError:  # a ValueError too: not to be taken for the TOML reader's below
        raise
    except FileNotFoundError:
        raise ConfigError("config file not found", path=path, fix=_missing_config_fix(path)) \
            from None
    except IsADirectoryError:
        raise ConfigError("is a folder, not a config file", path=path,
                          fix=f"pass a .toml file such as {default_toml()}") from None
    except PermissionError:
        raise ConfigError("cannot be read (permission denied)", path=path,
                          fix="check the file's permissions (chmod u+r)") from None
    except UnicodeDecodeError as e:  # "fix the syntax" did not say what was wrong
        at = e.start + (len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0)
        raise ConfigError(f"is not UTF-8 text (byte 0x{raw[at]:02x} at byte {at}; saved as "
                          "Latin-1 or Windows-1252?)", path=path,
                          fix="save it as UTF-8, as TOML files are") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML ({e})", path=path,
                          fix=f"fix the syntax; {default_toml()} shows every key") from None
    except (ValueError, RecursionError) as e:
        # what Python's TOML reader raises besides its own error, as tracebacks: a number of
        # over 4300 digits (int conversion's limit), lists or tables nested thousands deep
        problem = ("holds a number of more than 4300 digits" if isinstance(e, ValueError) else
                   "nests lists or tables too deeply")
        raise ConfigError(problem, path=path,
                          fix=f"fix the value; {default_toml()} shows every key") from None
    config = Config.from_dict(data, source=str(path))
    check_device_rate(config, source=str(path))
    check_stream(config, source=str(path))
    return config
