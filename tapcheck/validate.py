"""The one place settings are range-checked: a table of rules, one per dataclass field.

Every field of the settings dataclasses in :mod:`tapcheck.config` has a rule here (a test checks
that none is missing). Each dataclass runs its rules in ``__post_init__``, so a value is refused
when the config is built — from a TOML file, a command-line option (``Config.replace``), a model
file's stored settings or library code — before any work, with a :class:`ConfigError` naming the
key, the value and what is allowed. Without this, ``hop_length = 0`` or ``lr = nan`` surfaced as a
traceback deep inside training, and ``far = 0.0`` only after the whole run.

The bounds are generous: they refuse what cannot work or would exhaust the machine (an FFT of a
billion points), not what is merely unusual.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Callable

from .errors import ConfigError

Rule = Callable[[Any], str | None]  # value -> what is wrong, or None

#: a station token travels in the page's address and a cookie: URL-safe, and long enough to guess
#: at no better than a random one of secrets.token_urlsafe's (a " " or "a" token was accepted).
#: Checked when a config is built, as every setting is (only `station` refused it: `doctor` and
#: `train` passed a config `station` then refused), and for $TAPCHECK_STATION_TOKEN
STATION_TOKEN = re.compile(r"[A-Za-z0-9._~-]{16,}")
TOKEN_PROBLEM = ("must be at least 16 characters, each a letter, a digit or one of -_.~ (it goes "
                 "into the page's address)")
TOKEN_FIX = ("make one with python3 -c 'import secrets; print(secrets.token_urlsafe(18))', or "
             "leave it unset for a new random one")


def shown(value: Any, *, limit: int = 60) -> str:
    """``repr(value)`` for an error line, cut after ``limit`` characters: a 100 000-character
    model name or key was echoed whole, a 100 kB "line" (QA)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(value) if isinstance(value, str) else len(text)} characters)"


def is_int(value: Any) -> bool:
    """A whole number (a bool is none, though Python counts it one): in a config or a model
    file."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A real number (int or float, not a bool): in a config or a model file."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def whole(lo: int, hi: int) -> Rule:
    """A whole number in [lo, hi]."""
    def rule(value: Any) -> str | None:
        if not is_int(value):
            return "must be a whole number"
        if not lo <= value <= hi:
            return f"must be between {lo} and {hi}"
        return None
    return rule


def number(lo: float = -math.inf, hi: float = math.inf, *, lo_open: bool = False,
           hi_open: bool = False) -> Rule:
    """A finite number in the interval; ``*_open`` excludes that end."""
    def rule(value: Any) -> str | None:
        if not is_real(value):
            return "must be a number"
        if not math.isfinite(value):
            return "must be a finite number"
        if value < lo or value > hi or (lo_open and value == lo) or (hi_open and value == hi):
            left, right = "(" if lo_open else "[", ")" if hi_open else "]"
            return f"must be in {left}{lo:g}, {hi:g}{right}"
        return None
    return rule


def one_of(*allowed: str) -> Rule:
    def rule(value: Any) -> str | None:
        if value not in allowed:
            near = nearest(value, allowed)
            return (f"must be one of: {', '.join(repr(a) for a in allowed)}"
                    + (f" (did you mean {near!r}?)" if near else ""))
        return None
    return rule


def optional(inner: Rule) -> Rule:
    """``None`` (the model's own default) or what ``inner`` allows."""
    return lambda value: None if value is None else inner(value)


def flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def name(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must be a non-empty name"


def nearest(value: Any, choices) -> str | None:
    """The one of ``choices`` a typo away from ``value`` (difflib's ratio of 0.8 or more), or
    None: a misspelt key, model or setting names what was meant."""
    import difflib

    choices = list(choices)
    # in another case first: `--model ARCFACE-LITE` and optimizer = "Adam" got no word (QA)
    same = [c for c in choices if isinstance(c, str) and c.lower() == str(value).lower()]
    if same:
        return same[0]
    found = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.8)
    return found[0] if found else None


def registered(module: str, name: str, *, default: Any = None, listed_by: str = "") -> Rule:
    """One of the keys of registry ``name`` in ``tapcheck.<module>``, imported only when the
    key is checked (the scorers bring torch, which ``tapcheck log`` and the config's defaults
    need not load); ``default``, a key the registry is known to hold, is passed unchecked.
    A misspelt key gets the nearest one, and ``listed_by`` names the command that describes
    them (`train --model arcface-litee` got a list of 20 names and no pointer; QA)."""
    def rule(value: Any) -> str | None:
        import importlib

        if value == default:
            return None
        keys = getattr(importlib.import_module(f"tapcheck.{module}"), name)
        if value in keys:
            return None
        notes = [f"`{listed_by}` describes them"] if listed_by else []
        near = nearest(value, keys)
        notes += [f"did you mean {near!r}?"] if near else []
        return (f"must be one of: {', '.join(map(repr, keys))}"
                + (f" ({'; '.join(notes)})" if notes else ""))
    return rule


BIG = 10**6
DB = number(-400.0, 400.0)  # any level a float32 clip can have, in dB

RULES: dict[str, dict[str, Rule]] = {
    "audio": {
        # audio.MAX_SAMPLE_RATE: no clip past it is read, and 705600 was accepted here while
        # every clip, the fix's 44100 Hz one too, was refused (QA)
        "sr": whole(1000, 384_000),
        "duration_s": number(0.0, 120.0, lo_open=True),  # audio.MAX_DURATION_S
    },
    "features": {
        "n_fft": whole(16, 65536),
        "hop_length": whole(1, 65536),
        "top_db": number(0.0, 400.0, lo_open=True),
        "n_bins": whole(2, 32769),  # the frequency-stretch augmentation needs two bins
        "fmin_bin": whole(0, 32768),
        "n_frames": whole(1, 10_000),
        "pre_frames": whole(0, 10_000),
        "shift_frames": whole(0, 10_000),
        "n_crops": whole(1, 64),
        "min_strike_db": number(0.0, 400.0),
    },
    "train": {
        # checked against the registry when set (the default is a registered name: a test
        # says so), so a config naming no model fails when read, naming its file
        "model": registered("models", "MODELS", default="arcface-resnet18",
                            listed_by="tapcheck models"),
        "epochs": optional(whole(1, BIG)),
        # BatchNorm needs two samples per batch; a batch of one fails mid-training
        "batch_size": optional(whole(2, BIG)),
        "lr": optional(number(0.0, 10.0, lo_open=True)),
        "optimizer": optional(one_of("sgd", "adam")),
        "momentum": number(0.0, 1.0, hi_open=True),
        "weight_decay": number(0.0, 1.0),
        # one dimension: every cosine distance is 0 or 2 and ArcFace's angle has no room; the
        # run trained to the end and was then refused as diverged, lr and seed no help (QA)
        "embedding_dim": optional(whole(2, 65536)),
        "seed": whole(0, 2**32 - 1),  # numpy's default_rng refuses negative seeds
        "scorer": optional(registered("detectors", "SCORERS")),
        "knn_k": whole(1, BIG),
        "knn_metric": one_of("cosine", "euclidean"),
        "knn_exp": flag,
        # a new training asks for MIN_FAR at least (calibration_choice.py); a model file
        # trained before that bound, with a rarer rate, still loads
        "far": number(0.0, 1.0, lo_open=True, hi_open=True),
        "calib_fraction": number(0.0, 1.0, hi_open=True),
        "arcface_scale": optional(number(0.0, 1000.0, lo_open=True)),
        "arcface_margin": number(0.0, math.pi, hi_open=True),
        "focal_gamma": number(0.0, 100.0),
        "triplet_mining": one_of("batch-all", "batch-hard"),
        "triplet_margin": number(0.0, 100.0),
        "triplet_k": whole(2, BIG),
        "freq_stretch": number(0.0, 1.0, hi_open=True),
        "bf16": flag,
        "patience": whole(0, BIG),
        "calibration": one_of("auto", "cross-fit", "hold-out", "leave-one-board-out"),
        "crossfit_folds": whole(2, 1000),
        "board_taps": whole(1, 1000),
        "board_rule": registered("boards", "BOARD_RULES"),
        "threshold_fit": registered("calibration", "THRESHOLD_FITS"),
        "board_far": number(0.0, 1.0, lo_open=True, hi_open=True),
        "pseudo_per_batch": flag,
        "members": whole(1, 16),
        "ema_decay": number(0.0, 1.0, hi_open=True),
    },
    "record": {
        "clip_dbfs": number(-400.0, 0.0),
        "clip_samples": whole(1, BIG),
        "min_peak_dbfs": number(-400.0, 0.0),
        "max_retakes": whole(0, BIG),
    },
    "stream": {
        "device_sr": whole(0, 768_000),
        "block_s": number(0.0, 10.0, lo_open=True),
        "frame_s": number(0.0, 10.0, lo_open=True),  # the detector's limit: stream_problem
        "highpass_hz": number(0.0, 100_000.0),
        "margin_db": number(0.0, 400.0, lo_open=True),
        "hysteresis_db": number(0.0, 400.0),
        "refractory_s": number(0.0, 3600.0),
        "max_strike_s": number(0.0, 3600.0, lo_open=True),
        "floor_rise_s": number(0.0, 3600.0, lo_open=True),
        "floor_fall_s": number(0.0, 3600.0, lo_open=True),
        "warmup_s": number(0.0, 3600.0),
        "min_level_dbfs": number(-400.0, 0.0),
        "pre_roll_s": number(0.0, 3600.0),
        "judge_threads": whole(0, 4096),
        "board_gap_s": number(0.0, 86_400.0),
    },
    "station": {
        "host": name,
        "port": whole(0, 65535),  # 0: any free port
        "token": lambda value: None if isinstance(value, str) else "must be text",
        "explain": flag,
    },
}


def _features_together(f: Any) -> tuple[str, str] | None:
    """Rules that tie several feature settings together: (key, problem) or None."""
    bins = f.n_fft // 2 + 1
    if f.fmin_bin + f.n_bins > bins:
        return ("n_bins", f"fmin_bin + n_bins = {f.fmin_bin + f.n_bins} is more than the "
                          f"{bins} frequency bins an n_fft of {f.n_fft} gives (n_fft // 2 + 1)")
    if f.hop_length > f.n_fft:
        return ("hop_length", f"{f.hop_length} is more than n_fft ({f.n_fft}): frames would "
                              "skip audio")
    if 2 * f.pre_frames > f.n_frames:  # a crop of noise before the tap hears no ringing
        return ("pre_frames", f"{f.pre_frames} frames before the strike are more than half of "
                              f"a crop's n_frames ({f.n_frames}): the crops would hold the "
                              "silence before the tap, not its ringing (default 4)")
    return None


def _train_together(t: Any) -> tuple[str, str] | None:
    """Rules that tie training settings together: (key, problem) or None."""
    if t.calibration == "hold-out" and t.calib_fraction == 0:  # 'auto': checked in training
        return ("calib_fraction", "0 holds out no takes, and calibration 'hold-out' fits the "
                                  "threshold on held-out takes; set calib_fraction above 0 "
                                  "(default 0.15), or calibration 'leave-one-board-out' (kNN "
                                  "scorers) or 'cross-fit', which use every take")
    if t.ema_decay > 0 and t.patience > 0:  # which weights: the best epoch's, or the average?
        return ("ema_decay", f"{t.ema_decay} averages the weights over the whole run, and "
                             f"patience {t.patience} keeps the best epoch's weights instead; "
                             "set one of them to 0")
    return None


TOGETHER: dict[str, Callable[[Any], tuple[str, str] | None]] = {
    "features": _features_together,
    "train": _train_together,
}


#: spectrogram values a second of audio may take (the defaults: 0.18 million; n_fft 2048 with
#: hop_length 32, 2.8 million): 120 s, the longest clip read, then take at most 4 GB in float64
MAX_SPECTROGRAM_VALUES_PER_S = 4e6


def check_across(config: Any) -> None:
    """Rules that tie settings of two sections together; the first failure raises.

    The crops after the strike must fit in a clip: otherwise every clip is refused as "too
    short", one line per recording, where the fault is one setting (``sr = 1000``).

    Raises
    ------
    ConfigError
    """
    a, f = config.audio, config.features
    span = (f.n_frames + (f.n_crops - 1) * f.shift_frames) * f.hop_length  # features.py
    clip = a.sr * a.duration_s
    if span > clip:
        raise ConfigError(
            f"the crops need {span} samples after the strike ([features] n_frames "
            f"{f.n_frames} + {f.n_crops - 1} x shift_frames {f.shift_frames}, times hop_length "
            f"{f.hop_length}), {span / a.sr:.2f} s at [audio] sr {a.sr} Hz: more than a clip "
            f"of duration_s {a.duration_s:g} s holds", fix="use fewer or shorter crops, or "
            "raise [audio] sr or duration_s (the defaults: 16128 samples, 0.37 s of a 3 s "
            "clip at 44100 Hz)")
    # each rule above passed n_fft 65536 with hop_length 1: every clip then asked for 97 GB
    values = a.sr / f.hop_length * (f.n_fft // 2 + 1)
    if values > MAX_SPECTROGRAM_VALUES_PER_S:
        raise ConfigError(
            f"[features] n_fft {f.n_fft} with hop_length {f.hop_length} at [audio] sr {a.sr} Hz "
            f"make {values / 1e6:,.1f} million spectrogram values per second of audio, more than "
            f"the {MAX_SPECTROGRAM_VALUES_PER_S / 1e6:g} million a clip may take (a 3 s clip: "
            f"{values * 3 * 8 / 1e9:,.1f} GB)", fix="raise hop_length or lower n_fft (the "
            "defaults, 1024 and 128 at 44100 Hz: 0.18 million)")


def check_section(section: str, settings: Any) -> None:
    """Run every rule of ``section`` on a settings dataclass; the first failure raises.

    Raises
    ------
    ConfigError
        Naming ``section.key``, the value, and the allowed values.
    """
    rules = RULES[section]
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        problem = rules[f.name](value)
        if problem:
            from .config import default_toml  # config.py imports this module

            raise ConfigError(f"'{section}.{f.name}' {problem}, not {shown(value)}",
                              fix="fix it in the config file or option ("
                                  f"{default_toml()} shows the defaults)")
    together = TOGETHER.get(section)
    found = together(settings) if together else None
    if found:
        key, problem = found
        raise ConfigError(f"'{section}.{key}': {problem}",
                          fix="fix it in the config file or option")
