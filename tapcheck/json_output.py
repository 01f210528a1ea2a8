"""JSON that strict parsers read: what ``judge``, ``evaluate`` and ``log`` print with ``--json``.

A file name that is not UTF-8 reaches Python as lone surrogates (``take\\udcff.wav``), which
``json.dumps`` writes as ``"\\udcff"``: valid to Python, but RFC 8259 leaves it to the parser,
I-JSON forbids it, and jq turned the name into U+FFFD (QA). Such bytes are written as the text
``\\xff`` instead, as a terminal shows them escaped, and no number is ``NaN``.
"""

from __future__ import annotations

import json


def utf8_text(text: str) -> str:
    """``text`` with a file name's undecodable bytes (surrogate escapes) as ``\\xNN`` text,
    and any other lone surrogate as ``\\uDNNN`` text: a string every UTF-8 encoder takes."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate no file name holds
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def json_ready(value):
    """``value`` with every string (keys too) made :func:`utf8_text`, through dicts, lists
    and tuples."""
    if isinstance(value, str):
        return utf8_text(value)
    if isinstance(value, dict):
        return {json_ready(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def json_line(value) -> str:
    """One line of strict JSON: :func:`json_ready` text, and ``ValueError`` for a NaN or an
    infinity rather than a bare ``NaN`` that strict parsers refuse."""
    return json.dumps(json_ready(value), allow_nan=False)
