"""What ``tapcheck judge`` does with a batch of clips: a verdict per clip, explanations of the
anomalous ones, and a board's taps combined into one verdict (:func:`judge_clips`), and what it
prints of them (:class:`Judgment`). :mod:`tapcheck.judge` judges the clips.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

from .boards import BOARD_RULES
from .config import Config
from .console import RepeatedWarnings, one_line, score_pair
from .json_output import json_line
from .errors import FormatWarning, ParameterError, TapcheckWarning
from .judge import ANOMALOUS, HEARD, Judge, Verdict, checks_off, unused_train_settings

if TYPE_CHECKING:
    from .explanation import Explanation
    from .explain_references import References


@dataclass
class Judgment:
    """What ``tapcheck judge`` found: a verdict per clip, explanations, board verdicts.

    ``explanations`` maps the index of an anomalous verdict to its
    :class:`tapcheck.explanation.Explanation`; ``boards`` holds
    :class:`tapcheck.boards.BoardVerdict` rows when board verdicts were asked for.
    """

    verdicts: list[Verdict]
    calibration: dict
    explanations: dict = field(default_factory=dict)
    boards: list | None = None
    warnings: list[str] = field(default_factory=list)  # about the call, not one clip
    # why explanations were asked for and none could be made (the model's dataset gone):
    # --json names it in each anomalous row, whose reader never sees the stderr warning
    unexplained: str | None = None
    # each board's own warnings, for --json's board lines (stderr gives them, grouped: a
    # script reading the board lines never saw them; QA), by BoardVerdict.board
    board_warnings: dict[str, list[str]] = field(default_factory=dict)

    @property
    def errors(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.error]

    @property
    def exit_code(self) -> int:
        """0 all normal, 1 any anomalous (any board, with board verdicts), 2 any clip unjudged."""
        if self.errors:
            return 2
        if self.boards is not None:
            return 1 if any(b.verdict == ANOMALOUS for b in self.boards) else 0
        return 1 if any(v.anomalous for v in self.verdicts) else 0

    def lines(self, *, as_json: bool = False, debug: bool = False,
              shown: VerdictLines | None = None) -> tuple[list[str], list[str]]:
        """What the command prints: (standard output lines, standard error lines); with
        ``debug``, each clip's error line follows its traceback. ``shown``: the
        :class:`VerdictLines` that printed the verdicts already, as they were judged; then only
        what follows them."""
        out: list[str] = []
        err: list[str] = []
        if shown is None:
            shown = VerdictLines(self.calibration, as_json=as_json)
            for i, v in enumerate(self.verdicts):
                o, e = shown.verdict(v, why=self.explanations.get(i),
                                     unexplained=self.unexplained)
                out += o
                err += e
        err += shown.summary() + [f"tapcheck: warning: {w}" for w in self.warnings]
        for b in self.boards or []:
            said = []
            if b.taps != b.expected_taps and BOARD_RULES[b.rule].per_count:
                said = [f"board {b.board}: {b.taps} taps; the board threshold is calibrated "
                        f"for {b.expected_taps}, so its stated rate holds only approximately"]
            out.append(json_line({"board_verdict": {
                **b.to_dict(), "warnings": self.board_warnings.get(b.board, []) + said}})
                if as_json else b.line())
            err += [f"tapcheck: warning: {w}" for w in said]
        for v in self.errors:  # --debug: the traceback a bad clip's one line stands for
            err += v.trace.rstrip("\n").splitlines() if debug and v.trace else []
            err.append(f"tapcheck: error: {v.error}")
        if self.errors and len(self.verdicts) > 1:
            err.append(f"tapcheck: {len(self.errors)} of {len(self.verdicts)} clip(s) could not "
                       "be judged")
        return [one_line(x) for x in out], [one_line(x) for x in err]


class VerdictLines:
    """What ``judge`` prints of each verdict, verdict by verdict: :func:`show_judgment` prints
    a long batch's lines as its clips are judged, :meth:`Judgment.lines` all of them at the end,
    the same lines either way.

    It keeps what is said once for many clips: the model's statement (before the first
    verdict), the clips the model was trained on, and a format's warnings repeated over many
    clips (:meth:`summary`).
    """

    def __init__(self, calibration: dict, *, as_json: bool = False):
        self.calibration, self.as_json = calibration, as_json
        self.stated = False
        self.heard: list[str] = []  # one line for them all: a training folder warned per take
        self.repeated = RepeatedWarnings()  # a format's warnings over many clips: a few, a count

    def verdict(self, v: Verdict, *, why: Explanation | None = None,
                unexplained: str | None = None) -> tuple[list[str], list[str]]:
        """One verdict's (standard output lines, standard error lines); a clip that could not
        be judged has none (:meth:`Judgment.lines` lists them last)."""
        from .calibration import describe, threshold_interval

        info, out, err = self.calibration, [], []
        if self.as_json:
            # the rate itself, and whether it is a guess: the text's statement line says
            # both, and the JSON had only which boards it holds for (QA)
            row = {**v.to_dict(), "threshold_ci": threshold_interval(info),
                   "false_alarm_rate": info["far"], "rate_holds_for": info["holds_for"],
                   "rate_is_a_guess": bool(info.get("warning"))}
            if why is not None:
                row["explanation"] = why.to_dict()
            elif unexplained is not None and v.anomalous:
                row["explanation"], row["not_explained"] = None, unexplained
            out.append(json_line(row))
        elif not v.error:
            if not self.stated:  # the statement goes with verdicts only
                err.append(f"tapcheck: {describe(info)}")
                self.stated = True
            self.heard += [v.path for w in v.warnings if w.endswith(HEARD)]
            err += [f"tapcheck: warning: {w}" for w in v.warnings if not w.endswith(HEARD)
                    and self.repeated.admit(w, FormatWarning if w in v.format_warnings
                                            else TapcheckWarning)]
            score, threshold = score_pair(v.score, v.threshold)
            out.append(f"{v.verdict:<9}  score {score}  threshold {threshold}  "
                       f"{v.model}  {v.path}")
            if why is not None:
                out.append(f"           why: {why.sentence}")
                if why.picture:  # take001.png, take001-2.png: which clip's is which
                    out.append(f"           picture: {why.picture}")
        return [one_line(x) for x in out], [one_line(x) for x in err]

    def summary(self) -> list[str]:
        """The warnings said once for the verdicts so far (standard error lines)."""
        heard = self.heard
        if len(heard) == 1:
            lines = [f"tapcheck: warning: {heard[0]}: {HEARD}"]
        elif heard:
            lines = [f"tapcheck: warning: {heard[0]} and {len(heard) - 1} more clip(s): are "
                     "recordings the model was trained or calibrated on, or given by enroll: "
                     "their scores are not new taps'"]
        else:
            lines = []
        lines += [f"tapcheck: warning: {w}" for w in self.repeated.summary()]
        return [one_line(x) for x in lines]


def show_judgment(paths: Sequence[str | os.PathLike], *, echo: Callable[[str], None],
                  echo_err: Callable[[str], None], as_json: bool = False, debug: bool = False,
                  **options) -> int:
    """``tapcheck judge``: :func:`judge_clips` with ``options``, its lines printed with
    ``echo`` (standard output) and ``echo_err`` (standard error); returns the exit status.

    Each batch's verdicts are printed as it is judged, unless board verdicts or explanations
    are asked for (they need every clip first): judge printed nothing until the last clip
    (about 45 minutes for a year's station folder of 50,000 clips: QA), and a Ctrl-C lost every
    verdict found so far.
    """
    shown = None
    # as judge_clips reads them: a picture folder or references explain, a board is any name
    if (not any(options.get(k) for k in ("explain", "picture_dir", "references", "per_board"))
            and options.get("board") is None):
        def on_batch(verdicts: list[Verdict], calibration: dict) -> None:
            nonlocal shown
            shown = shown or VerdictLines(calibration, as_json=as_json)
            for v in verdicts:
                out, err = shown.verdict(v)
                for line in err:
                    echo_err(line)
                for line in out:
                    echo(line)

        options["on_batch"] = on_batch
    result = judge_clips(paths, **options)
    out, err = result.lines(as_json=as_json, debug=debug, shown=shown)
    for line in out:
        echo(line)
    for line in err:
        echo_err(line)
    return result.exit_code


def judge_clips(paths: Sequence[str | os.PathLike], *, model, config: Config | None = None,
                explain: bool = False, picture_dir: str | os.PathLike | None = None,
                references: str | os.PathLike | None = None, per_board: bool = False,
                board: str | None = None,
                on_batch: Callable[[list[Verdict], dict], None] | None = None) -> Judgment:
    """Everything ``tapcheck judge`` does: judge clips, explain the anomalous ones, and combine
    a board's taps into one verdict.

    Parameters
    ----------
    paths : sequence of path
    model : path or LoadedModel
    config : Config, optional
        Settings whose features must be the model's (see :func:`check_same_features`).
    explain, picture_dir, references
        Explain anomalous clips (:func:`explain_verdicts`); a ``picture_dir``
        or ``references`` implies ``explain``.
    per_board, board
        Board verdicts: clips grouped by their ``boardNN/`` folder, or all of them ``board``.
    on_batch : callable, optional
        Called with each batch's verdicts, in order, as they are judged, and the model's
        calibration (:attr:`Judgment.calibration`); once, with them all, when board verdicts
        are asked for. Explanations come after it.
    """
    from .boards import board_name, board_name_problem

    problem = None if board is None else board_name_problem(board)
    if problem:
        raise ParameterError(f"--board {problem}")
    board = None if board is None else board_name(board)
    if picture_dir is not None:  # before judging: refused after it, the verdicts would be lost
        from .pictures import check_picture_folder

        check_picture_folder(picture_dir)
    judge = Judge(model, config=config)
    named, unusable = None, []
    if references is not None:
        # read before judging, as the station does: a typo or a dataset with no usable normal
        # take failed only when a clip was anomalous (then no verdict was printed at all), and
        # passed unnoticed when none was
        from .explain_references import dataset_references

        named, unusable = dataset_references(references, judge)
    info = judge.model.detector.calibration_
    verdicts = judge.judge_files(
        list(paths), refuse_repeats=per_board or board is not None,
        on_batch=None if on_batch is None else lambda batch: on_batch(batch, info))
    result = Judgment(verdicts, info)
    result.warnings += checks_off(judge)
    if config is not None:
        result.warnings += unused_train_settings(judge.model, config)
    if explain or picture_dir or references:
        result.explanations, warned, result.unexplained = explain_verdicts(
            judge, verdicts, references=named, picture_dir=picture_dir)
        result.warnings += unusable + warned
    if per_board or board is not None:
        from .board_judgment import judge_boards

        found = judge_boards(verdicts, calibration=info, board=board)
        result.boards, result.board_warnings = found.boards, found.board_warnings
        result.warnings += found.warnings
    return result


def explain_verdicts(judge: Judge, verdicts, *,
                     references: str | os.PathLike | References | None = None,
                     picture_dir: str | os.PathLike | None = None
                     ) -> tuple[dict[int, Explanation], list[str], str | None]:
    """Explanations of the anomalous verdicts of :meth:`Judge.judge_files`, by index, warning
    lines (reference takes left out, see :func:`dataset_references`; the model's own training
    dataset gone or changed, when no ``references`` are given: then no explanations), and why
    there are none then (its problem and fix, one line), else None.

    ``references``: a dataset to compare with, or its :class:`References` read already
    (``judge --references`` reads them before judging, so a bad one fails with no verdict
    printed whatever the clips). The model's own references are read only when a verdict is
    anomalous: nothing else needs them. With ``picture_dir``, also a PNG per explained clip
    (:func:`tapcheck.pictures.save_pictures`).
    """
    from .errors import DatasetError
    from .explain import Explainer  # torch's model code and matplotlib: only when explaining
    from .explain_references import References, dataset_references

    wanted = [i for i, v in enumerate(verdicts) if v.anomalous]
    if not wanted:
        return {}, [], None
    if references is None or isinstance(references, References):
        named, warned = references, []
    else:
        named, warned = dataset_references(references, judge)
    try:
        explainer = Explainer(judge, references=named)
    except DatasetError as e:
        if references is not None:  # only the model's own references are looked up here
            raise
        # The model's training dataset moved or changed: the verdicts stand without it (an
        # explanation only says why), so it is one warning, not an error that swallows them.
        # It is looked for here, when the first anomalous clip needs it, not before judging:
        # a run whose clips are all normal needs no references and should hear nothing about
        # them; and one Explainer per run makes it one warning however many clips it leaves.
        return {}, warned + [f"{e.path}: {e.problem}, so {len(wanted)} anomalous clip(s) "
                             f"are judged but not explained — {e.fix}"], (
            f"{e.path}: {e.problem} — {e.fix}")
    import warnings

    from .errors import TapcheckWarning

    with warnings.catch_warnings():
        # the clips' verdicts said them already: `--explain` printed each one twice. Here, in
        # judge's one thread: the filter is the process's (station's listener runs beside its
        # explainer and keeps its warnings)
        warnings.simplefilter("ignore", TapcheckWarning)
        # a clip given twice is explained once: the same sentence, and one picture, not two
        # (take001.png and take001-2.png of the same clip)
        once: dict[str, str] = {}
        for i in wanted:  # the first spelling given names it
            once.setdefault(os.path.realpath(verdicts[i].path), verdicts[i].path)
        found = dict(zip(once, explainer.explain_files(list(once.values())), strict=True))
    out = {i: e for i in wanted if (e := found[os.path.realpath(verdicts[i].path)]) is not None}
    if picture_dir is not None:
        from .errors import StorageError
        from .pictures import save_pictures

        try:
            save_pictures([e for e in found.values() if e is not None], picture_dir)
        except StorageError as e:  # a full disk: the verdicts stand (it lost every one)
            warned.append(f"{e}; the verdicts and explanations stand, without those pictures")
    return out, warned, None
