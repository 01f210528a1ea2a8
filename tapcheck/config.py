"""Settings: one source of truth.

Dataclasses hold every default. ``configs/*.toml`` files have one table per dataclass (``[audio]``,
``[features]``, ``[train]``, ``[record]``, ``[stream]``, ``[station]``) whose keys are exactly the
fields; an unknown table or key is an error, so a typo never passes silently. Command-line options
override the file. The resolved configuration is stored inside every model file (see
:mod:`tapcheck.modelfile`), the station's token excepted.

Fields whose default is ``None`` are filled from the chosen model's own defaults
(``tapcheck models`` lists them), because the study tuned optimiser settings per model.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .validate import (STATION_TOKEN, TOKEN_FIX, TOKEN_PROBLEM, check_across, check_section,
                       nearest, shown)


@dataclass(frozen=True)
class AudioConfig:
    """How clips are read and recorded."""

    sr: int = 44100  # study: librosa.load(sr=44100)
    duration_s: float = 3.0  # study: 3 s per recording

    def __post_init__(self) -> None:
        check_section("audio", self)  # refused when built, before any work


@dataclass(frozen=True)
class FeatureConfig:
    """The study's strike-region crops: power spectrogram in dB, 100 bins x 120 frames, twice."""

    n_fft: int = 1024  # study
    hop_length: int = 128  # study
    top_db: float = 80.0  # librosa.power_to_db's default, as the study used it
    n_bins: int = 100  # study: crop 100 frequency bins (0-4.3 kHz at 44.1 kHz)
    fmin_bin: int = 0  # first bin of the crop; the study kept the lowest bins
    n_frames: int = 120  # study: crop 120 frames (0.35 s)
    pre_frames: int = 4  # frames kept before the strike's onset: the attack itself
    shift_frames: int = 6  # the second crop starts this many frames later (study: "slightly")
    n_crops: int = 2  # study: each WAV gives 2 samples
    min_strike_db: float = 15.0  # the strike must stand this far above the clip's noise floor

    def __post_init__(self) -> None:
        check_section("features", self)  # refused when built, before any work


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained, scored and calibrated. ``None`` means the model's own default."""

    model: str = "arcface-resnet18"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None  # "sgd" or "adam"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    embedding_dim: int | None = None
    seed: int = 0
    # "knn", "knn-decay", "knn-ldn", "mahalanobis" (on embeddings), "prob" or "recon";
    # tapcheck.detectors
    scorer: str | None = None
    knn_k: int = 5  # AdaCos source: k-th nearest neighbour, k = 5
    knn_metric: str = "cosine"  # "cosine" or "euclidean"
    knn_exp: bool = False  # AdaCos source: score exp(1 - cos) instead of 1 - cos
    far: float = 0.05  # false-alarm rate the threshold is set for, on normal clips only
    calib_fraction: float = 0.15  # normal takes held out: validation, prob/recon threshold
    # threshold from: held-out takes of known boards ("hold-out"), every take against the
    # reference without its board ("leave-one-board-out", kNN), or networks trained without each
    # fold of boards ("cross-fit": crossfit_folds more trainings); "auto": cross-fit from 8
    # normal training boards, hold-out below (docs/new-boards.md)
    calibration: str = "auto"
    crossfit_folds: int = 4  # demo: 4 normal training boards, one left out per fold
    board_taps: int = 3  # taps an inspector makes per board, one verdict from them
    # a board is anomalous when most of its taps are ("vote"), or when the median of its taps is
    # over a threshold fitted on medians of calibration taps ("median", at board_far); with
    # arcface-lite ±20 % and knn-decay the vote flagged 0-2.6 % of healthy boards from 3 taps
    # where the fit stated 2 % and gave up to 10.8 % (docs/new-boards.md, "Judging a board")
    board_rule: str = "vote"
    board_far: float = 0.02  # false-alarm rate per healthy board the median rule is fitted for
    # the tail fit of the thresholds: "lognormal" (the log scores' predictive quantile; the
    # normal clips' scores followed it more closely than a gamma in 49 of 52 fits, and on the
    # default model (demo, five seeds) it flagged fewer healthy taps on every seed, unseen
    # boards 14.7 -> 12.2 %, known 11.2 -> 8.3 % for a stated 5 %: docs/new-boards.md), or
    # "gamma" (tapcheck before; lighter-tailed, a lower threshold); calibration.THRESHOLD_FITS
    threshold_fit: str = "lognormal"
    arcface_scale: float | None = None  # None: from the number of classes, see models/cosine.py
    arcface_margin: float = 0.2  # radians (ArcFace) or cosine (CosFace)
    focal_gamma: float = 0.0  # CNN: 0 = cross-entropy, > 0 = focal loss (study: no difference)
    triplet_mining: str = "batch-all"  # "batch-all" (fast-triplet source) or "batch-hard"
    triplet_margin: float = 0.2  # fast-triplet source
    triplet_k: int = 4  # crops per class in a triplet batch; batch_size // triplet_k classes
    freq_stretch: float = 0.06  # augmentation: stretch each crop's frequency axis by up to ±6 %
    bf16: bool = True  # bfloat16 autocast on CPUs that support it
    patience: int = 0  # stop when the normal-only validation loss stalls this many epochs; 0 = off
    # one class: draw pseudo-anomalies per batch (3x faster; AUC 0.014 lower at both of the two
    # seeds measured, docs/fast-model.md), or materialise all four classes (5x the data)
    pseudo_per_batch: bool = False
    # networks trained alike from different seeds and judged as one (their embeddings' mean
    # cosine), at members x the training and the network's time; on the demo it halved
    # arcface-resnet18's AUC spread over seeds (docs/new-boards.md; models/ensemble.py)
    members: int = 1
    # an exponential moving average of the weights over the training steps, decay per step;
    # the averaged network is the one kept. Off: on the recipe it steadied arcface-resnet18 on
    # the demo (AUC 0.968 ± 0.015 -> 0.974 ± 0.006) and ranked the plant set better, but cost it
    # 0.032 on another draw of the demo's boards, raised false alarms on two sets of three, and
    # cost arcface-lite 0.006 (docs/new-boards.md, "Weight averaging")
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        check_section("train", self)  # refused when built, before any work


@dataclass(frozen=True)
class RecordConfig:
    """The checks ``tapcheck record`` makes of every take while the board is still in hand."""

    clip_dbfs: float = -0.1  # samples this close to full scale count as clipped
    clip_samples: int = 3  # a take with this many clipped samples is refused as clipped
    min_peak_dbfs: float = -40.0  # a take whose peak stays below this is too quiet
    max_retakes: int = 5  # with --yes: give up after this many bad takes in a row

    def __post_init__(self) -> None:
        check_section("record", self)  # refused when built, before any work


@dataclass(frozen=True)
class StreamConfig:
    """Live input and strike detection in a stream, for ``record --trigger`` and ``listen``.

    A strike starts when a frame's level rises ``margin_db`` above the adaptive noise floor; it
    lasts until the level falls ``hysteresis_db`` below that trigger level again, and no new strike
    starts within ``refractory_s`` of its onset, so a board's ring-down or a double bounce of the
    stick is never a second strike.
    """

    device_sr: int = 0  # Hz; 0: 44.1 kHz if the device has it, else the device's own rate
    block_s: float = 0.01  # audio arrives in blocks this long
    frame_s: float = 0.005  # the detector measures the level of frames this long
    highpass_hz: float = 150.0  # hum and rumble below this are not a strike
    margin_db: float = 20.0  # a strike rises this far above the noise floor
    hysteresis_db: float = 10.0  # ...and ends this far below its trigger level
    refractory_s: float = 0.25  # no second strike this soon after an onset (bounces)
    max_strike_s: float = 2.0  # a "strike" louder for longer is a new noise floor
    floor_rise_s: float = 2.0  # time constant of the noise floor following louder noise
    floor_fall_s: float = 0.1  # ...and following quieter noise
    warmup_s: float = 0.3  # input that sets the noise floor before strikes count
    min_level_dbfs: float = -70.0  # nothing quieter is a strike, whatever the floor (silence)
    pre_roll_s: float = 0.5  # audio kept before a strike's onset in a take or clip
    judge_threads: int = 1  # torch threads for listen's verdicts; 0: torch's default (all cores)
    # listen --taps-per-board: a longer pause between two judged taps ends the board in progress,
    # so a tap missed on one board does not shift every later board (mic QA); 0: never. Taps of
    # one board come 1-2 s apart; moving to the next board takes longer
    board_gap_s: float = 5.0

    def __post_init__(self) -> None:
        check_section("stream", self)  # refused when built, before any work


@dataclass(frozen=True)
class StationConfig:
    """The station's web page (``tapcheck station``)."""

    host: str = "127.0.0.1"  # loopback: only this machine; another address needs the token
    port: int = 8321
    token: str = ""  # required on every request when set; "" on another host: a new one per start
    explain: bool = True  # explain anomalous taps (needs the model's training dataset)

    def __post_init__(self) -> None:
        check_section("station", self)  # refused when built, before any work
        if self.token and not STATION_TOKEN.fullmatch(self.token):  # the token is not shown
            raise ConfigError(f"[station] token {TOKEN_PROBLEM}", fix=TOKEN_FIX)


@dataclass(frozen=True)
class Config:
    """Everything that decides what tapcheck computes."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    station: StationConfig = field(default_factory=StationConfig)

    def __post_init__(self) -> None:
        check_across(self)  # the crops fit a clip

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict (TOML- and torch.load(weights_only=True)-safe).

        The station's token is left out: this dict is stored in every model file, which is
        shared far more widely than a config.
        """
        d = dataclasses.asdict(self)
        d["station"]["token"] = ""
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> "Config":
        """Build from nested tables; unknown tables or keys raise :class:`ConfigError`."""
        return _build(cls, data, source, "")

    def replace(self, section: str, **changes: Any) -> "Config":
        """A copy with some fields of one section changed; ``None`` values are ignored."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        current = getattr(self, section)
        data = {**dataclasses.asdict(current), **changes}
        try:
            new = _build(type(current), data, "option", f"{section}.")
        except ConfigError as e:
            # the changes are a command's options: name the option the user typed, where
            # "option: 'train.seed' must be ..." named a config key (`train --seed -3`)
            for key in changes:
                quoted = f"'{section}.{key}'"
                if quoted in e.problem:
                    option = "--" + key.replace("_", "-")
                    raise ConfigError(e.problem.replace(quoted, f"{option} ({section}.{key})"),
                                      fix=e.fix) from None
            raise
        return dataclasses.replace(self, **{section: new})


#: tapcheck's own configs, installed with it (the repository's ``configs/`` links to them)
CONFIGS = Path(__file__).resolve().parent / "configs"


def default_toml() -> str:
    """tapcheck's ``configs/default.toml`` as a fix can name it from the working folder: by
    that name in the checkout, by its full path elsewhere (a user outside the checkout was sent
    to a ``configs/default.toml`` that is not there)."""
    shipped = CONFIGS / "default.toml"
    if not shipped.is_file():
        return "configs/default.toml of tapcheck's source"
    try:
        here = Path("configs/default.toml").resolve() == shipped
    except OSError:  # the working folder removed under us
        here = False
    return "configs/default.toml" if here else str(shipped)


def _key_fix(key: str, prefix: str, fields: dict, root: type) -> str:
    """What to write instead of the unknown ``key`` of table ``prefix`` (``fields`` its keys)
    in a file of ``root``'s tables: a key of another table (``epochs = 3`` above every header,
    ``n_fft`` under ``[train]``) is sent under its header, a misspelt one (``train.epoch``)
    gets the nearest key; the valid keys follow either way."""
    valid = f"valid keys here: {', '.join(prefix + name for name in fields)}"
    homes = [name for name, kind in typing.get_type_hints(root).items()
             if dataclasses.is_dataclass(kind) and f"{name}." != prefix
             and key in {f.name for f in dataclasses.fields(kind)}]
    if homes:
        tables = " and ".join(f"[{h}]" for h in homes)
        return f"'{key}' is a key of {tables}: write it under that header; {valid}"
    near = nearest(key, fields)
    return f"did you mean '{prefix}{near}'? {valid}" if near else valid


def _build(cls: type, data: Any, source: str, prefix: str, root: type | None = None):
    if not isinstance(data, dict):
        table = prefix.rstrip(".")
        raise ConfigError(f"'{table}' must be a table, not {type(data).__name__} {data!r}",
                          path=source, fix=f"write its settings under a [{table}] header, e.g. "
                                           f"{default_toml()}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key {shown(prefix + unknown[0])}", path=source,
                          fix=_key_fix(unknown[0], prefix, fields, root or cls))
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            values[name] = _build(kind, value, source, f"{prefix}{name}.", root or cls)
        else:
            values[name] = _coerce(value, kind, source, f"{prefix}{name}")
    try:
        return cls(**values)
    except ConfigError as e:  # a value out of range: name the file (or option) it came from
        raise ConfigError(e.problem, path=source, fix=e.fix) from None


def _coerce(value: Any, kind: Any, source: str, key: str) -> Any:
    options = typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:  # an integer of over 308 digits: a traceback
                raise ConfigError(f"'{key}' is too large a number "
                                  f"({len(str(value))} digits)", path=source,
                                  fix=f"{default_toml()} shows every key with a value of its "
                                      "type") from None
        if option is str and isinstance(value, str):
            return value
    wanted = " or ".join(getattr(o, "__name__", str(o)) for o in options if o is not type(None))
    fix = f"{default_toml()} shows every key with a value of its type"
    if isinstance(value, str) and any(_parses(value, o) for o in options):
        fix = f"write it without quotes: {key.rsplit('.', 1)[-1]} = {value.strip()}"
    raise ConfigError(f"'{key}' must be {wanted}, not {shown(value)}", path=source, fix=fix)


def _parses(text: str, kind: Any) -> bool:
    """Whether TOML text ``text`` reads as ``kind`` (a number quoted by mistake: "10")."""
    try:
        value = tomllib.loads(f"x = {text.strip()}")["x"]
    except tomllib.TOMLDecodeError:
        return False
    if kind is bool:
        return isinstance(value, bool)
    return kind in (int, float) and not isinstance(value, bool) and isinstance(
        value, kind if kind is int else (int, float))
