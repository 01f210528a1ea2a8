"""What a live session (``listen``, ``station``, ``record``) can work with: the ``[stream]`` and
``[record]`` settings of a config file, and a device rate that reaches the crop's band.

Checked when a config file is read (:func:`tapcheck.configfile.load_config`), naming the file,
before any microphone or folder opens. Not rules of the dataclasses (:mod:`tapcheck.validate`):
model files rebuild their stored settings, which judging never uses, and one they stored must
still load.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError


def stream_problem(c: Any) -> tuple[str, str] | None:
    """What the strike detector cannot work with in ``[stream]`` settings ``c``: (key,
    problem), or None. Not a rule of the dataclass, as model files rebuild their stored
    ``[stream]`` (which judging never uses) and one they stored must still load."""
    if c.frame_s > 0.1:
        return ("frame_s", f"{c.frame_s:g} s must be at most 0.1 s, the strike detector's frame")
    if c.hysteresis_db >= c.margin_db:
        return ("hysteresis_db", f"{c.hysteresis_db:g} must be below stream.margin_db "
                                 f"({c.margin_db:g}): a strike ends that far below where it "
                                 "began; e.g. margin_db = 20, hysteresis_db = 10")
    return None


def check_stream(config: Any, *, source: str) -> None:
    """:func:`stream_problem` of a config file's ``[stream]``, and the values of ``[stream]``
    and ``[record]`` a live session cannot work with: refused when the file is read, naming it,
    before a microphone or a folder is opened (the detector refused them only once listening,
    and listen had made its log by then; QA).

    Raises
    ------
    ConfigError
    """
    for section, found in (("stream", stream_problem(config.stream)
                            or _live_problem(config.stream)),
                           ("record", _record_problem(config.record))):
        if found:
            key, problem = found
            raise ConfigError(f"'{section}.{key}': {problem}", path=source,
                              fix="fix it in the config file or option")


#: quietest clipping level: a take's samples above it count as clipped, so -400 called every
#: take clipped, and the error blamed the input gain (QA)
MIN_CLIP_DBFS = -20.0


def _record_problem(r: Any) -> tuple[str, str] | None:
    """``[record]`` values no take can pass, checked when a config file is read."""
    default = type(r)()
    if r.clip_dbfs < MIN_CLIP_DBFS:
        return ("clip_dbfs", f"{r.clip_dbfs:g} must be at least {MIN_CLIP_DBFS:g} dBFS: samples "
                             "above it count as clipped, so every take would be "
                             f"(default {default.clip_dbfs:g})")
    if r.min_peak_dbfs >= r.clip_dbfs:
        return ("min_peak_dbfs", f"{r.min_peak_dbfs:g} must be below record.clip_dbfs "
                                 f"({r.clip_dbfs:g}): a take must peak above it without "
                                 f"clipping (default {default.min_peak_dbfs:g})")
    return None


#: longest audio block: half of the 2 s ``listen`` and ``record`` wait for a block before they
#: call the microphone gone (``tapcheck.devices.BLOCK_TIMEOUT_S``)
MAX_BLOCK_S = 1.0
#: longest warm-up or pre-roll: a config's 3600 s kept listen deaf for an hour, saying nothing
MAX_LEAD_S = 10.0
#: a high-pass this high leaves nothing of a tap below it, and past the Nyquist frequency
#: (22 050 Hz at 44.1 kHz) the filter was switched off without a word (QA)
MAX_HIGHPASS_HZ = 20_000.0


def _live_problem(c: Any) -> tuple[str, str] | None:
    """``[stream]`` values a live session cannot work with, checked when a config file is read
    (QA: each was accepted, and listen or record failed or went deaf, blaming the microphone).
    Not :func:`stream_problem`'s, so settings a model file stored still load."""
    default = type(c)()
    if c.block_s > MAX_BLOCK_S:
        return ("block_s", f"{c.block_s:g} s must be at most {MAX_BLOCK_S:g} s: a block that "
                           "long reads as a microphone gone (listen waits 2 s for one); "
                           f"default {default.block_s:g}")
    for key in ("warmup_s", "pre_roll_s"):
        if getattr(c, key) > MAX_LEAD_S:
            return (key, f"{getattr(c, key):g} s must be at most {MAX_LEAD_S:g} s (default "
                         f"{getattr(default, key):g})")
    if c.highpass_hz >= MAX_HIGHPASS_HZ:
        return ("highpass_hz", f"{c.highpass_hz:g} Hz must be below {MAX_HIGHPASS_HZ:g} Hz: it "
                               f"removes hum below a tap's band (default {default.highpass_hz:g})")
    return None


def check_device_rate(config: Any, *, source: str) -> None:
    """``[stream] device_sr``, when set, must reach the crop's band, as a clip's rate must.

    ``judge`` and ``import`` refuse a file sampled below the rate the crops need (8614 Hz at the
    study's settings: :func:`tapcheck.features.required_sample_rate`); ``listen`` and ``record``
    took such a rate for the microphone and judged bands that held nothing. Checked when a
    config file is read, so before any device opens; not in :class:`Config` itself, which model
    files rebuild from their stored settings too.

    Raises
    ------
    ConfigError
    """
    rate = config.stream.device_sr
    if not rate:
        return
    from .features import required_sample_rate  # here: features imports the config

    need = required_sample_rate(config.features, sr=config.audio.sr)
    if rate < need:
        raise ConfigError(
            f"'stream.device_sr' {rate} Hz records sound up to {rate / 2:g} Hz only; tapcheck "
            f"listens up to {need / 2:.0f} Hz", path=source,
            fix=f"set device_sr to 0 (44100 Hz when the microphone has it), or to a rate the "
                f"microphone has of at least {math.ceil(need)} Hz")
