"""What ``enroll`` refuses, and what it warns of in what it takes.

Every refusal is made before the model file is touched: a clip given twice or enrolled before
(it would count twice in the calibration), a recording the model was trained or calibrated on,
a ``--board`` the model was trained on as defective, a take its dataset labels ``defect``, a
clip far over the threshold (a defect or another material, not a new wood), and the clips of a
board the model judges ANOMALOUS by its board rule (as ``judge --per-board`` would). ``force``
overrides those that a person who checked the board may know better than the model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .enrolled import those, undo_advice
from .errors import ParameterError
from .known_boards import free_board, trained_defect_boards
from .paths import model_command


#: a clip beyond the threshold by this many times the gap between the typical normal clip and
#: the threshold is clearly not a normal board: refused unless forced. A false alarm on a new
#: wood batch lands near the threshold, another material or a crack far beyond it; the gap, not
#: the threshold itself, is the unit because cosine distances of normal clips sit on an offset
REFUSE_GAPS = 2.0


def refuse_limit(detector) -> float:
    """Score above which :func:`tapcheck.enroll.enroll` refuses a clip without ``force``."""
    from .calibration import unfitted

    threshold = detector.threshold_
    typical = float(np.median(detector.calibration_scores_))
    # too few clips to fit, the threshold is the highest of them and its gap to their median
    # shows nothing (1 clip: none, and every tap over the threshold was refused as defective,
    # the very false alarms enrolment is for; QA): then the threshold itself is the unit, three
    # times it the limit (a threshold of cosine distances is far below 1/3 in practice: 0.02-0.3)
    gap = threshold if unfitted(detector.calibration_) else max(threshold - typical, 0.0)
    return threshold + REFUSE_GAPS * gap


def refuse_repeats(clips: Sequence[str | os.PathLike], prints: list[str], taps: list[str],
                    enrolled: list[dict[str, Any]], *, model: Path) -> None:
    """A recording given twice, or enrolled before, would count twice in the calibration: told
    by its bytes (``prints``) or by its crops (``taps``, :func:`crop_digest`: the same tap as
    WAV and as FLAC); enrolments from before crop digests by bytes, from before fingerprints
    by path."""
    from .copies import first_repeat, repeat_problem

    repeat = first_repeat(clips, prints) or first_repeat(clips, taps)
    if repeat:
        raise ParameterError(
            f"{repeat_problem(*repeat)}; enrolled twice it would count twice "
            "in the calibration; nothing enrolled", path=repeat[0], fix="name each clip once")
    found = []  # (clip, enrolment index, its name there) of each clip enrolled before
    for index, entry in enumerate(enrolled):
        before = dict(zip(entry.get("digests", []), entry["clips"], strict=False))
        same_tap = dict(zip(entry.get("crop_digests", []), entry["clips"], strict=False))
        # enrolments from before fingerprints: only their paths, as given from the folder the
        # command ran in, which a relative path names only from that folder
        paths = {os.path.abspath(c) for c in entry["clips"]} if "digests" not in entry else set()
        for clip, digest, tap in zip(clips, prints, taps, strict=True):
            if digest in before or tap in same_tap or os.path.abspath(clip) in paths:
                found.append((clip, index, before.get(digest) or same_tap.get(tap)
                              or os.fspath(clip)))
    if found:
        clip, index, was = found[0]
        # every clip given again is counted: five re-enrolled taps named the first alone, and
        # the user left it out to be refused for the next (QA)
        more = sorted({os.fspath(c) for c, _, _ in found[1:]} - {os.fspath(clip)})
        also = (f"; so were {len(more)} more of the clips given ({', '.join(more[:3])}"
                f"{', …' if len(more) > 3 else ''})" if more else "")
        holding = {i for _, i, _ in found}
        raise ParameterError(
            f"was enrolled into this model on {enrolled[index]['at']} (as {was}){also}; "
            "nothing enrolled", path=clip,
            fix=("leave them out" if more else "leave it out") + f", or take {those(holding)}"
                " back first: "
                + undo_advice(model, index=min(holding), count=len(enrolled), holding=holding))


def refuse_own(clips: Sequence[str | os.PathLike], prints: list[str], taps: list[str],
                checkpoint: dict[str, Any]) -> None:
    """A recording the model was trained or calibrated on is in its reference or its
    threshold's fit already: enrolled, it would count twice. Told by its bytes (``prints``) or
    by its crops (``taps``: the same samples as FLAC; model files from before 2026-12-04 keep
    the bytes' digests only, and from before 2026-12-03 none, and are checked as far as that)."""
    from .modelfile import provenance

    own = set(provenance(checkpoint, "digests")) | set(provenance(checkpoint, "crop_digests"))
    for clip, digest, tap in zip(clips, prints, taps, strict=True):
        if digest in own or tap in own:
            if _own_label(checkpoint, digest, tap) == "defect":  # in no reference (QA)
                raise ParameterError(
                    "is one of the defect takes the model was trained on: enrolled as a normal "
                    "tap, it would teach the model that a cracked board sounds healthy; nothing "
                    "enrolled", path=clip, fix="enrol taps of sound boards")
            raise ParameterError(
                "is one of the recordings the model was trained or calibrated on: its reference "
                "or threshold holds it already, and enrolled it would count twice; nothing "
                "enrolled", path=clip, fix="enrol taps the model has not been given")


def refuse_near_copies(detector, emb: np.ndarray, clips: Sequence[str | os.PathLike],
                       enrolled: list[dict[str, Any]], *, model: Path) -> None:
    """A tap already in the reference, or given twice, as a resampled or requantised copy (other
    bytes, other crops: :func:`refuse_repeats` and :func:`refuse_own` miss it) would count
    twice in the calibration as surely as the file itself: told by its embedding lying nearer
    the other than any distinct tap does (:func:`tapcheck.copies.embedding_copies`). QA
    enrolled a 48 kHz copy of a take, and evaluate then scored the take against its own copy."""
    from .copies import embedding_copies
    from .recalibration import reference_groups

    found = embedding_copies(detector, emb)
    if not found:
        return
    clip, where, other, distance, spacing = found[0]
    near = (f"its embedding lies {distance:.2g} from that tap's, where distinct taps lie "
            f"{spacing:.2g} apart typically: a resampled or requantised copy")
    more = f" ({len(found) - 1} more of the clips are copies too)" if len(found) > 1 else ""
    if where == "clip":
        raise ParameterError(
            f"is the same tap as {os.fspath(clips[other])} ({near}); enrolled twice it would "
            f"count twice in the calibration{more}; nothing enrolled", path=clips[clip],
            fix="name each tap once")
    entry = next(((i, e) for i, e in enumerate(enrolled)
                  if e["first_row"] <= other < e["first_row"] + e["rows"]), None)
    if entry is not None:
        index, e = entry
        raise ParameterError(
            f"is the same tap as {e['clips'][other - e['first_row']]}, enrolled into this model "
            f"on {e['at']} ({near}){more}; nothing enrolled", path=clips[clip],
            fix="leave it out, or take that enrolment back first: "
                + undo_advice(model, index=index, count=len(enrolled), holding={index}))
    group = int(reference_groups(detector)[other])
    board = f" board {group}'s" if group >= 0 else ""
    # "or calibrated on" only where the calibration takes are references too: a hold-out
    # threshold's are not, and their copies are not told (review)
    raise ParameterError(
        f"is the same tap as one of{board} recordings the model was trained on and holds as "
        f"references ({near}): enrolled it would count twice{more}; nothing enrolled",
        path=clips[clip], fix="enrol taps the model has not been given")


def _own_label(checkpoint: dict[str, Any], digest: str, tap: str) -> str | None:
    """The label of the training take whose bytes are ``digest`` or crops ``tap``, or None where
    the model file cannot tell (lists of another length: a file edited by hand)."""
    from .modelfile import provenance

    paths = provenance(checkpoint, "takes") + provenance(checkpoint, "calibration_takes")
    labels = dict(zip(checkpoint.get("classes", []), checkpoint.get("class_labels", []),
                      strict=False))  # checked on load
    for key, value in (("digests", digest), ("crop_digests", tap)):
        digests = provenance(checkpoint, key)
        if len(digests) == len(paths) and value in digests:
            return labels.get("/".join(paths[digests.index(value)].split("/")[:2]))
    return None


def folder_board_warning(boards: Sequence[int], *, model: str | os.PathLike | None) -> str:
    """The one warning for clips enrolled without ``--board`` from ``boardNN`` folders into the
    model file ``model``."""
    undo = model_command(model, "enroll", "--undo")
    if len(boards) == 1:
        return (f"the clips sit in a board{boards[0]:02d} folder, but without --board the "
                "enrolment stores no board number (the folder name is not taken as one) — "
                f"`{undo}`, then enrol them with --board {boards[0]}")
    return (f"the clips sit in folders of boards {', '.join(map(str, boards))}, but without "
            "--board the enrolment stores no board number (folder names are not taken as one) "
            f"— `{undo}`, then enrol each board's clips with its own --board")


def refuse_defect_board(checkpoint: dict[str, Any], board: int,
                         clips: Sequence[str | os.PathLike], *, model: Path) -> None:
    """``--board N`` of a board the model was trained on as defective: its taps would stand in
    the reference as a cracked board's healthy ones (and evaluate would count a cracked board
    known), most likely a mistyped number; refused unless forced."""
    if board not in trained_defect_boards(checkpoint):
        return
    from .boards import board_of_path

    folders = sorted({int(b) for c in clips if (b := board_of_path(c)) is not None} - {board})
    # a number to give, not "the clips' own --board" (QA): one the model does not know
    own = f"--board {folders[0]}" if len(folders) == 1 else \
        f"e.g. --board {free_board(checkpoint, clips)}, a number the model does not know"
    raise ParameterError(
        f"board {board} is a board the model was trained on as defective; enrolled under its "
        "number, these taps would be a cracked board's healthy references; nothing enrolled",
        path=model, fix=f"give the board the taps are of ({own}), or pass --force if board "
                        f"{board} is sound now")


def refuse_labelled_defects(clips: Sequence[str | os.PathLike], *, force: bool) -> None:
    """A clip that is a take its dataset's manifest labels ``defect``: enrolled as a normal tap,
    it teaches the model that a cracked board sounds healthy. Only ``evaluate`` said it, after
    the model had taken board 62's taps (QA). Clips outside a dataset, or in one whose manifest
    cannot be read, tell nothing."""
    if force:
        return
    from .dataset_folders import dataset_holding
    from .datasets import Dataset
    from .errors import TapcheckError

    holders: dict[str, Path | None] = {}  # folder: the dataset holding it (once per folder)
    defects: dict[Path, dict[str, Any]] = {}  # dataset: its defect takes by real path
    for clip in clips:
        folder = os.path.dirname(os.path.realpath(clip))
        if folder not in holders:
            holders[folder] = dataset_holding(folder)
        root = holders[folder]
        if root is None:
            continue
        if root not in defects:
            try:
                dataset = Dataset(root)
            except (TapcheckError, OSError):
                defects[root] = {}
                continue
            # the rows' own paths, unchecked: path_of refuses a row linked out of the dataset,
            # and one such defect row refused every enrolment from it (review)
            defects[root] = {os.path.realpath(root / t.path): t for t in dataset.takes
                             if t.label == "defect"}
        take = defects[root].get(os.path.realpath(clip))
        if take is not None:
            here = os.path.realpath(os.getcwd())
            # named as the clip is: a relative clip's dataset relative to here, not resolved
            shown = Path(os.path.relpath(root, here)) if not os.path.isabs(clip) and \
                os.path.commonpath([here, root]) == here else root
            raise ParameterError(
                f"is a take of board {take.board} that {shown / 'manifest.csv'} labels defect: "
                "enrolled as a normal tap, it would teach the model that a cracked board sounds "
                "healthy; nothing enrolled", path=clip,
                fix="enrol taps of sound boards, or pass --force if the label is wrong")


def refuse_defective(detector, scores: np.ndarray, clips, *, force: bool) -> None:
    """A clip scoring far above the threshold is a defect, not a new normal board."""
    worst, limit = int(np.argmax(scores)), refuse_limit(detector)
    if not force and scores[worst] > limit:
        # how many, and leaving them out: only --force was offered, for one clip of four (QA)
        over = int((scores > limit).sum())
        which = (f"the highest of {over} of the {len(scores)} clips over the limit"
                 if over > 1 else f"1 of the {len(scores)} clips" if len(scores) > 1 else "")
        raise ParameterError(
            f"scores {scores[worst]:.4g}, far above the threshold {detector.threshold_:.4g} "
            f"(limit {limit:.4g}){f', {which}' if which else ''}: it sounds defective, not like "
            "a new normal board; nothing enrolled", path=clips[worst],
            fix=f"check the board: leave {'them' if over > 1 else 'it'} out, or pass --force "
                f"to enrol {'them' if over > 1 else 'it'} all the same")


def refuse_anomalous_board(detector, scores: np.ndarray, clips: Sequence[str | os.PathLike], *,
                           board: int | None, force: bool) -> None:
    """Refuse clips of a board the model judges ANOMALOUS by its own board rule, as ``judge
    --per-board`` would (the vote: most taps over the threshold, a tie decided by the median),
    unless ``force``: a cracked board's taps, each over the threshold but not clearly enough
    for :func:`refuse_defective`, were enrolled with one warning per tap, and the model then
    found 11 % of the defective boards instead of 67 % (QA). A sound board that raised a false
    alarm is enrolled all the same, once someone has checked it.

    The clips are one board under ``board``; without it, the clips of each ``boardNN`` folder
    are one board, and the clips in none another (enrolment's group, not ``judge``'s board per
    loose clip).
    """
    from .boards import board_of_path, board_verdicts
    from .console import score_pair

    if force:
        return
    info = detector.calibration_
    groups: dict[str, list[int]] = {}
    for i, clip in enumerate(clips):
        key = str(board) if board is not None else (board_of_path(clip) or "")
        groups.setdefault(key, []).append(i)
    for key, rows in groups.items():
        mine = np.asarray(scores)[rows]
        verdict, = board_verdicts([clips[i] for i in rows], mine, board=key,
                                  threshold=info["board_threshold"],
                                  expected_taps=info["board_taps"], rule=info["board_rule"])
        if verdict.verdict != "ANOMALOUS":
            continue
        worst = rows[int(np.argmax(mine))]
        score, tap = score_pair(float(scores[worst]), float(detector.threshold_))
        if len(rows) == 1:
            heard = f"scores {score}, over the threshold {tap}: the model judges it ANOMALOUS"
        else:
            median, threshold = score_pair(verdict.median, verdict.threshold)
            rule = (f"{verdict.over} of its {len(rows)} clips over the threshold {threshold}, "
                    f"median {median}" if info["board_rule"] == "vote" else
                    f"the median of its {len(rows)} clips, {median}, over the board threshold "
                    f"{threshold}")
            heard = (f"the model judges {f'board {key}' if key else 'the board of these clips'}"
                     f" ANOMALOUS ({rule}; this clip highest, {score})")
        raise ParameterError(
            f"{heard}, and enrolled, boards that sound like it would pass as sound; nothing "
            "enrolled", path=clips[worst],
            fix="check the board: pass --force if it is sound (a new wood batch, a false "
                f"alarm), or leave {'it' if len(rows) == 1 else 'its clips'} out")


def over_threshold_warning(done: dict[str, Any], *, model: str | os.PathLike) -> str:
    """The one warning for enrolled clips the model judged ANOMALOUS (``enroll``'s
    ``over_threshold``): one line for them all, not one per tap (QA)."""
    from .console import score_pair

    over, before = done["over_threshold"], done["threshold_before"]
    undo = f"`{model_command(model, 'enroll', '--undo')}` takes the enrolment back"
    if len(over) == 1:
        (clip, score), = over
        # as many decimals as tell them apart: "scores 0.002988, over the threshold 0.002988"
        shown, threshold = score_pair(score, before)
        return (f"{clip}: scores {shown}, over the threshold {threshold} (judged ANOMALOUS), "
                f"enrolled as a normal tap all the same — if that board is not sound, {undo}")
    clip, score = max(over, key=lambda o: o[1])
    shown, threshold = score_pair(score, before)
    # led by a file, as every warning of clips is (review)
    return (f"{clip} and {len(over) - 1} more of the {done['clips']} clips: score over the "
            f"threshold {threshold} (judged ANOMALOUS; this one highest, {shown}), enrolled as "
            f"normal taps all the same — if that board is not sound, {undo}")
