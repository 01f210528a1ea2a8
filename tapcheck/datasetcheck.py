"""``tapcheck doctor --dataset``: is a dataset fit to train on?

The manifest against the files on disk; every take loaded as training would (sample rate,
duration, strike found, clipping, other knocks); boards per split, labels, class balance,
calibration takes. Each check is a function in :data:`DATASET_CHECKS` returning
:class:`tapcheck.doctor.Finding` s.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .config import Config
from .doctor import NOTE, OK, PROBLEM, Finding
from .errors import DatasetError, TapcheckError
from .file_kinds import special_kind
from .misfiled import misfiled

MAX_LISTED = 20  # per kind of finding about single takes; the rest are counted


@dataclass
class TakeReport:
    """What loading one take as training would load it says."""

    path: str  # relative to the dataset
    file: Path
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    sample_rate: int | None = None  # of the file
    duration_s: float | None = None  # of the file
    outside: bool = False  # a link out of the dataset: never read, whether or not it leads on


def inspect_takes(dataset, *, config: Config = Config(), progress: bool = False
                  ) -> list[TakeReport]:
    """Load every take of a dataset and compute its crops, collecting errors and warnings.

    No feature cache: a cached take would hide its warnings.
    """
    import soundfile as sf

    from .features import clip_features

    takes = dataset.takes
    if progress:
        from tqdm.auto import tqdm

        takes = tqdm(takes, desc="doctor", unit="take", leave=False)
    reports = []
    for take in takes:
        try:
            report = TakeReport(take.path, dataset.path_of(take))
        except DatasetError as e:
            # train and evaluate refuse such a take; the doctor lists it among the other
            # problems and goes on checking (nor does it read what the link leads to)
            reports.append(TakeReport(take.path, dataset.root / take.path, error=str(e),
                                      outside=True))
            continue
        try:
            if special_kind(report.file):  # sf.info would block on a fifo; load() refuses it
                raise OSError("not a regular file")
            info = sf.info(os.fsencode(report.file))
            report.sample_rate, report.duration_s = info.samplerate, info.duration
        except Exception:  # noqa: BLE001 - clip_features below names the precise problem
            pass
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if report.file.is_dir():  # as train and evaluate say it: the advice for a
                    # folder given on a command line ("pass the clips themselves") was no fix
                    from .datasets import folder_take_error

                    raise folder_take_error(report.file)
                clip_features(report.file, audio=config.audio, features=config.features)
            except TapcheckError as e:
                report.error = str(e)
        report.warnings = [str(w.message) for w in caught]
        reports.append(report)
    return reports


def check_files(dataset, reports: list[TakeReport], config: Config) -> list[Finding]:
    """The manifest against the files: missing takes, audio files no row speaks of."""
    from .datasets import MANIFEST
    from .copies import copied_takes, take_digests

    missing = [r for r in reports if not r.file.exists() and not r.outside]
    orphans = unlisted_audio(dataset)
    findings = []
    if missing:
        findings.append(Finding(
            PROBLEM, f"{dataset.root / MANIFEST}: {len(missing)} take(s) have no file, e.g. "
                     f"{missing[0].path}",
            fix="restore them from a backup, or delete their rows"))
    if orphans:
        findings.append(Finding(
            NOTE, f"{len(orphans)} audio file(s) in {dataset.root} are not in the manifest, so "
                  f"no command uses them (copied in by hand, or a run killed between a take and "
                  f"its row?), e.g. {orphans[0]}",
            fix="bring them in with `tapcheck import`, or delete them"))
    copies = copied_takes(dataset.takes, take_digests(dataset, dataset.takes))
    if copies:  # train and evaluate refuse them: one recording would count twice
        copy, original = copies[0]
        findings.append(Finding(
            PROBLEM, f"{dataset.root / MANIFEST}: {len(copies)} take(s) hold the same bytes as "
                     f"an earlier take, e.g. {copy.path} (a copy of {original.path})",
            fix="delete the copies' rows: " + ", ".join(c.path for c, _ in copies[:5])
                + (", …" if len(copies) > 5 else "")))
    # every command counts a take as its row says: a board left out by leave-one-board-out
    # calibration kept it, and doctor said "nothing to fix" (QA); a side is a class the metric
    # networks train on: a left-end take filed as right trained the right end's class (QA)
    for problem, fix, _ in misfiled(dataset.takes):
        findings.append(Finding(PROBLEM, f"{dataset.root / MANIFEST}: {problem}", fix=fix))
    if dataset.own_columns:  # import and record refuse the dataset: doctor said "nothing to
        # fix" (QA)
        own = ", ".join(f"'{c}'" for c in dataset.own_columns)
        findings.append(Finding(
            NOTE, f"{dataset.root / MANIFEST}: has column(s) {own} that tapcheck does not keep: "
                  "import and record add no take to it (a row added would rewrite the manifest "
                  "without them); every other command reads it",
            fix="move those columns to a file of their own (keyed by path) before adding takes"))
    # atomic_write's temporary files: left only by a run killed (or a disk filled) mid-write
    strays = sorted(p.relative_to(dataset.root) for p in dataset.root.rglob(".*.tmp"))
    if strays:
        findings.append(Finding(
            NOTE, f"{len(strays)} unfinished temporary file(s) in {dataset.root} (a run killed "
                  f"while writing), e.g. {strays[0]}", fix="delete them; no take is in them"))
    if not findings:
        findings.append(Finding(OK, f"manifest: {len(reports)} takes, every file present"))
    return findings


def check_takes(dataset, reports: list[TakeReport], config: Config) -> list[Finding]:
    """Each take as training loads it: unusable ones, and warnings (clipping, knocks, rates)."""
    present = [r for r in reports if r.file.exists() or r.outside]
    bad = [r for r in present if r.error]
    warned = [(r, w) for r in present if not r.error for w in r.warnings]
    findings = [Finding(PROBLEM, r.error) for r in bad[:MAX_LISTED]]
    if len(bad) > MAX_LISTED:
        findings.append(Finding(PROBLEM, f"... and {len(bad) - MAX_LISTED} more unusable takes"))
    findings += [Finding(NOTE, w) for _, w in warned[:MAX_LISTED]]
    if len(warned) > MAX_LISTED:
        findings.append(Finding(NOTE, f"... and {len(warned) - MAX_LISTED} more warnings"))
    rates = Counter(r.sample_rate for r in present if r.sample_rate)
    durations = [r.duration_s for r in present if r.duration_s]
    if durations:
        # "strike found" read as said of every take, also in "0 of 1 takes usable" (QA)
        summary = (f"{len(present) - len(bad)} of {len(present)} takes usable; "
                   f"rates {', '.join(f'{sr} Hz x{n}' for sr, n in sorted(rates.items()))}; "
                   f"{min(durations):.2f}-{max(durations):.2f} s")
        findings.insert(0, Finding(OK if not bad else NOTE, summary))
    by_path = {t.path: t for t in dataset.takes}
    stale = [r for r in present if r.sample_rate and (
        r.sample_rate != by_path[r.path].sample_rate
        or abs(r.duration_s - by_path[r.path].duration_s) > 0.01)]
    if stale:
        r = stale[0]
        t = by_path[r.path]
        findings.append(Finding(
            NOTE, f"{len(stale)} take(s) differ from their manifest row, e.g. {r.path}: file "
                  f"{r.sample_rate} Hz {r.duration_s:.2f} s, manifest {t.sample_rate} Hz "
                  f"{t.duration_s:.2f} s", fix="were the files replaced? re-import them"))
    return findings


def unlisted_audio(dataset) -> list[Path]:
    """The audio files in ``dataset``'s folder that no manifest row lists, relative to it.

    Any audio file, not only takeNNN.wav: a clip copied in by hand is ignored by every command,
    which its owner should hear of (hidden folders hold no takes: temporary files, caches).
    """
    from .audio import AUDIO_SUFFIXES

    listed = {Path(t.path) for t in dataset.takes}
    audio = (p.relative_to(dataset.root) for p in dataset.root.rglob("*")
             if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    return sorted(rel for rel in audio if rel not in listed
                  and not any(part.startswith(".") for part in rel.parts))


def check_splits(dataset, reports: list[TakeReport], config: Config) -> list[Finding]:
    """Boards per split, labels, class balance, takes left to calibrate the threshold."""
    from .datasets import MANIFEST

    manifest = dataset.root / MANIFEST
    findings = []
    # the takes training would refuse are counted apart: "ok train: 1 normal board(s) (1
    # sides, 1 takes)" of a dataset whose one take train refused (QA)
    unusable = {r.path for r in reports if r.error or not (r.file.exists() or r.outside)}
    for split in ("train", "test"):
        takes = dataset.select(split=split)
        parts, level = [], OK
        for label in ("normal", "defect"):
            mine = [t for t in takes if t.label == label]
            if mine:
                usable = sum(t.path not in unusable for t in mine)
                shown = f", {usable} usable" if usable < len(mine) else ""
                sides = len({t.class_name for t in mine})  # "(1 sides, 1 takes)" (QA)
                parts.append(f"{len({t.board for t in mine})} {label} board(s) "
                             f"({sides} side{'s' * (sides != 1)}, {len(mine)} "
                             f"take{'s' * (len(mine) != 1)}{shown})")
                level = NOTE if usable < len(mine) else level
        findings.append(Finding(level, f"{split}: {', '.join(parts) or 'no takes'}"))
    labels = defaultdict(set)
    for t in dataset.takes:
        labels[t.class_name].add((t.split, t.label))
    # here, not at the top: training_data imports torch, 1.4 s of `tapcheck info`'s 1.6 s
    from .training_data import MIXED_SIDE_FIX, mixed_side_problem, mixed_sides

    refused = mixed_sides(dataset.select(split="train"))  # in train's own words
    findings += [Finding(PROBLEM, f"{manifest}: {mixed_side_problem(name)}", fix=MIXED_SIDE_FIX)
                 for name in refused]
    for name, found in sorted(labels.items()):
        if name not in refused and len({label for _, label in found}) > 1:
            # a board cracked since it was trained on (its defect takes in the test split), as
            # train's and import's fix suggests: evaluate counts them apart, nothing refuses it
            # (it was a PROBLEM, and the fix import gives made doctor fail; QA)
            where = {label: " and ".join(sorted(s for s, x in found if x == label))
                     for label in ("normal", "defect")}
            # said as the rows say it: "each in its own split" was fixed text, also of a side
            # whose labels are both in the test split (QA)
            findings.append(Finding(NOTE, f"{manifest}: {name} holds both labels (normal takes "
                                          f"in {where['normal']}, defect takes in "
                                          f"{where['defect']}; a board cracked since?); "
                                          "evaluate counts each label's takes apart"))
    train = dataset.select(split="train")
    per_class = Counter(t.class_name for t in train)
    normal = Counter(t.class_name for t in train if t.label == "normal")
    if not train:
        findings.append(Finding(PROBLEM, f"{manifest}: no takes in the training split",
                                fix="record or import takes with --split train"))
    elif not normal:
        findings.append(Finding(
            PROBLEM, f"{manifest}: no normal takes in the training split; the threshold is "
                     "learned from normal boards only",
            fix="record or import normal boards with --split train"))
    elif len(per_class) < 2:
        # train accepts it (a classifier learns it against pseudo-anomaly classes, with a
        # warning, as the odd-take study does): a problem here made doctor fail what train does
        findings.append(Finding(
            NOTE, f"{manifest}: the training split has one board side ({next(iter(per_class))})"
                  "; the metric and classifier models learn it against pseudo-anomaly classes "
                  "made from its crops",
            fix="record at least two board sides for a stronger model (both ends of a board "
                "will do)"))
    if per_class and max(per_class.values()) > 3 * min(per_class.values()):
        small, large = min(per_class, key=per_class.get), max(per_class, key=per_class.get)
        findings.append(Finding(
            NOTE, f"training classes are unbalanced: {large} has {per_class[large]} takes, "
                  f"{small} {per_class[small]}", fix=f"record more takes of {small}"))
    thin = sorted(name for name, n in normal.items() if n < 4)
    if normal and len(thin) == len(normal):
        findings.append(Finding(
            NOTE, "no normal board side has 4 training takes, so none are held out to calibrate "
                  "the threshold (it is estimated leaving one board out instead)",
            fix="record at least 4 takes per normal board side"))
    elif normal:
        findings += _calibration_clips(train, unusable, config)
    test = dataset.select(split="test")
    if train and not test:
        findings.append(Finding(NOTE, "the test split has no takes: `evaluate` and `compare` "
                                      "have nothing to measure false alarms or found defects on",
                                fix="record or import a few more takes per board, healthy and "
                                    "cracked, with --split test"))
    elif train and not any(t.label == "defect" for t in test):
        findings.append(Finding(NOTE, "the test split has no defect takes, so how well defects "
                                      "are found cannot be measured",
                                fix="add takes of a cracked board with --split test"))
    return findings


def _calibration_clips(train, unusable: set[str], config: Config) -> list[Finding]:
    """A note when the threshold `train` would fit rests on fewer clips than its rate needs:
    doctor said "nothing to fix" of 5 takes of one board side, and train then warned that the
    threshold rested on 1 clip (new-user trial). Counted as training splits them, with the
    config's calibration (``auto`` resolved by the normal boards)."""
    from .calibration import clips_needed
    from .crossfit import resolve_calibration
    from .training_data import split_calibration

    usable = [t for t in train if t.path not in unusable]
    normal = [t for t in usable if t.label == "normal"]
    method = resolve_calibration(config.train.calibration, len({t.board for t in normal}),
                                 freq_stretch=config.train.freq_stretch)
    clips = (len(split_calibration(usable, fraction=config.train.calib_fraction,
                                   seed=config.train.seed)[1]) if method == "hold-out"
             else len(normal))
    needed = clips_needed(config.train.far)
    if not clips or clips >= needed:  # none held out: the note above, or leave-one-board-out
        return []
    how = (f"{config.train.calib_fraction:.0%} of each normal board side's takes, held out"
           if method == "hold-out" else f"every normal take, {method}")
    return [Finding(NOTE, f"the threshold `train` fits would rest on {clips} normal clip"
                          f"{'s' * (clips != 1)} ({how}); a {config.train.far:.0%} false-alarm "
                          f"rate needs at least {needed} to be checked, so train will call the "
                          "stated rate a guess",
                    fix="record or import more normal takes, or more normal boards")]


def check_sources(dataset, reports: list[TakeReport], config: Config) -> list[Finding]:
    """Takes imported from lossy codings (MP3, …): stored as WAV, read as any take."""
    from .codings import lossy_takes_warning

    warning = lossy_takes_warning(dataset.root, (t.source for t in dataset.takes))
    return [Finding(NOTE, warning)] if warning else []


DATASET_CHECKS: list[Callable[..., list[Finding]]] = [check_files, check_takes, check_sources,
                                                      check_splits]


def check_dataset(name: str | os.PathLike, *, config: Config = Config(),
                  progress: bool = False) -> tuple[str, list[Finding]]:
    """Every dataset check; returns a title for the section and the findings.

    A dataset that cannot be opened (no manifest, a malformed one) is one problem finding.
    """
    from .datasets import Dataset

    try:
        dataset = Dataset.open(name)
    except TapcheckError as e:
        return f"dataset {name}", [Finding(PROBLEM, str(e))]
    reports = inspect_takes(dataset, config=config, progress=progress)
    title = f"dataset {dataset.root} ({len(dataset)} takes)"
    return title, [f for check in DATASET_CHECKS for f in check(dataset, reports, config)]
