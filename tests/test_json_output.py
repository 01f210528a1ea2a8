"""JSON strict parsers read: a name's undecodable bytes as text, no NaN."""

import json
import math
import os

import pytest

from tapcheck.json_output import json_line, utf8_text


def test_a_names_undecodable_bytes_become_their_escaped_text():
    name = os.fsdecode(b"clips/Brett-\xe4 \xff.wav")
    assert utf8_text(name) == "clips/Brett-\\xe4 \\xff.wav"
    assert utf8_text("Brett-ä.wav") == "Brett-ä.wav"  # UTF-8 names unchanged
    assert utf8_text("x\ud800y") == "x\\ud800y"  # a surrogate no file name holds


def test_json_line_is_strict_utf8_json_through_nested_values():
    bad = os.fsdecode(b"b\xe4.wav")
    line = json_line({"path": bad, "warnings": [f"{bad}: odd"], bad: (1, bad)})
    line.encode("utf-8")  # no lone surrogate anywhere
    assert json.loads(line) == {"path": "b\\xe4.wav", "warnings": ["b\\xe4.wav: odd"],
                                "b\\xe4.wav": [1, "b\\xe4.wav"]}
    with pytest.raises(ValueError):
        json_line({"score": math.nan})
