"""Option types and options every command shares: files, model files, config files, whole
numbers, board numbers and names, counts; ``--config`` and ``--dataset``.

Each refuses a bad value in tapcheck's one line (``tapcheck: error: ...``, exit 2) with its
fix, where click printed its usage block or read ``--seed ３`` as 3.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

# click would refuse an unreadable file before the command runs, in its own words and for the
# whole batch; tapcheck names each bad file in one line and carries on with the good ones
FILE = click.Path(path_type=Path, readable=False)


class ModelFile(click.Path):
    """A model file's path (``--model``, ``train --out``): :data:`FILE`, and never empty.

    ``--model ""`` became ``Path("")``, the working folder: judge said ``.: is a folder, not a
    model file`` and enroll stopped on a traceback (``PosixPath('.') has an empty name``).
    """

    def __init__(self):
        super().__init__(path_type=Path, readable=False)

    def convert(self, value, param, ctx):
        from ..errors import ParameterError

        if isinstance(value, str) and value == "":
            option = param.opts[0] if param is not None and param.opts else "the model path"
            raise ParameterError(
                f"{option} is empty: it names no model file",
                fix=f"give the path of a model file, e.g. {option} models/arcface-resnet18.pt, "
                    "or leave the option out for the default one")
        if isinstance(value, str) and os.path.basename(value) in ("", ".", ".."):
            # `--out new/` became the file new (a trailing slash is gone from a Path); `--out .`
            # gave a traceback, `--out new/..` failed to save after the whole training (QA)
            option = param.opts[0] if param is not None and param.opts else "the model path"
            raise ParameterError(f"{option} '{value}' names a folder, not a model file",
                                 fix=f"e.g. {option} {os.path.join(value, 'model.pt')}")
        return super().convert(value, param, ctx)


MODEL_FILE = ModelFile()


class ConfigFile(click.Path):
    """A ``--config`` file's path, never empty: ``--config ""`` (an unset shell variable) said
    ``.: is a folder``, naming a folder the user never gave (QA)."""

    def __init__(self):
        super().__init__(path_type=Path, readable=False)

    def convert(self, value, param, ctx):
        from ..errors import ParameterError

        if isinstance(value, str) and value == "":
            raise ParameterError("--config is empty: it names no config file",
                                 fix="give a TOML file, or one of tapcheck's own by name (e.g. "
                                     "--config new-boards), or leave the option out for the "
                                     "defaults")
        from ..configfile import config_file

        # tapcheck's own by name: every message that names the file names the file read
        return config_file(super().convert(value, param, ctx))


class Whole(click.IntRange):
    """A whole number in ASCII digits, within a range: Python's int() read `--epochs 1_0` as 10
    and `--seed ３` (full-width) as 3, which --seeds, --board and --since refuse (options QA)."""

    name = "integer"

    def __init__(self, min: int | None = None, max: int | None = None):  # noqa: A002
        super().__init__(min=min, max=max)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not re.fullmatch(r"\s*[+-]?[0-9]+\s*", value):
            self.fail(self.not_whole(value), param, ctx)
        return super().convert(value, param, ctx)

    def not_whole(self, value: str) -> str:
        return f"{value!r} is not a whole number (digits 0-9)"

    def _describe_range(self) -> str:  # unbounded: no "[x<=None]" in the help
        return "" if self.min is None and self.max is None else super()._describe_range()


def _as_folder_names_it(value):
    """``board12`` (a board's folder name, typed for its number) as ``12``: `judge --board
    board12` judged a board named "board12" and warned that its folders named board 12, and
    `enroll --board board12` was refused (QA)."""
    if isinstance(value, str):
        # spaces only around it: a control character is refused as in any board name
        found = re.fullmatch(r" *board[ _-]?([0-9]+) *", value, re.IGNORECASE)
        if found:
            return found.group(1)
    return value


class BoardNumber(Whole):
    """A board number, 0..999999 (``board07`` is board 7, as its folder names it); text that is
    no whole number is "not a board number", where click said "'abc' is not a valid integer
    range"."""

    name = "board number"

    def convert(self, value, param, ctx):
        return super().convert(_as_folder_names_it(value), param, ctx)

    def not_whole(self, value: str) -> str:
        return f"{value!r} is not a board number (a whole number from {self.min} to {self.max})"


BOARD = BoardNumber(min=0, max=999_999)  # tapcheck.manifest.MAX_BOARD, as in a manifest


class BoardName(click.ParamType):
    """``judge --board``: a board number, held to :data:`BOARD`'s range as every numeric
    ``--board`` is (``-1`` or a 20-digit number is refused alike), or a serial such as ``A-21``,
    on one line. A number is named as its folder names it (``07`` is board 7, see
    :func:`tapcheck.boards.board_name`)."""

    name = "BOARD"
    number = BOARD  # the range numbers are held to; tests check it is the log's

    def convert(self, value, param, ctx) -> str:
        from ..boards import board_name_problem  # numpy: not for --help

        value = _as_folder_names_it(value)
        problem = board_name_problem(value)
        if problem:
            self.fail(problem, param, ctx)
        if re.fullmatch(r"[+-]?[0-9]+", value.strip()):
            self.number.convert(value.strip(), param, ctx)  # click's own range message
        from ..boards import board_name

        return board_name(value)


class Count(click.ParamType):
    """A whole number of at least 1, refused in tapcheck's one line (``tapcheck: error: ...``,
    exit 2) with ``fix`` rather than click's usage block."""

    name = "N"

    def __init__(self, fix: str, *, maximum: int | None = None):
        self.fix, self.maximum = fix, maximum

    def convert(self, value, param, ctx) -> int:
        from ..errors import ParameterError

        text = str(value).strip()
        option = param.opts[0] if param is not None and param.opts else "the value"
        if not re.fullmatch(r"[+-]?[0-9]+", text):  # isdecimal took Arabic-Indic digits (QA)
            raise ParameterError(f"{option} {value!r} is not a whole number", fix=self.fix)
        if int(text) < 1:
            raise ParameterError(f"{option} must be 1 or more, not {int(text)}", fix=self.fix)
        if self.maximum is not None and int(text) > self.maximum:
            raise ParameterError(f"{option} must be at most {self.maximum}, not {int(text)}",
                                 fix=self.fix)
        return int(text)


# what --config takes, said once for every command's --help
CONFIG_HELP = "a TOML file, or tapcheck's own by name: default, fp32, new-boards, wide-stretch"


def config_option(help_text: str = "Settings; options override them."):
    return click.option("--config", "config_path", type=ConfigFile(), metavar="FILE|NAME",
                        help=f"{help_text} [{CONFIG_HELP}]",
                        multiple=True, callback=_one_config)


def _one_config(ctx, param, value: tuple) -> Path | None:
    """The one ``--config`` given: a second one replaced the first without a word, and a user
    stacking configs/new-boards.toml with a site's file lost the first file's settings (QA)."""
    from ..errors import ParameterError

    if len(value) > 1:
        raise ParameterError(
            f"--config given {len(value)} times ({', '.join(map(str, value))}); tapcheck reads "
            "one config file", fix="put the settings in one file (copy the sections of one "
                                   "into the other) and give that one")
    return value[0] if value else None


# what an option naming a dataset takes: tapcheck.dataset_folders.dataset_path's rule, said
# once here so that every command's --help says it alike ("Dataset name or folder" left a/b
# and ../x unexplained)
DATASET_FORMS = ("a name under ./recordings (or $TAPCHECK_RECORDINGS), or a path with a slash to "
                 "a dataset folder (./bench, ../data/bench, /srv/bench); a bare name that is a "
                 "dataset folder here means that folder")


def dataset_option(what: str, *, name: str = "--dataset", **kwargs):
    """A ``--dataset`` option (or ``name``) whose help is ``what``, then :data:`DATASET_FORMS`."""
    return click.option(name, metavar="NAME|PATH", help=f"{what}: {DATASET_FORMS}.", **kwargs)


def check_default_dataset(value: str, *, param: str = "dataset") -> None:
    """Refuse the default dataset ``value`` when the user gave none and it is not there, saying
    it is the default: `train` without --dataset, in a folder holding only `bench`, said
    "recordings/demo: no such dataset … make one with `tapcheck synth`", of a dataset the user
    never named (new-user trial). Called in a command's body, where click knows the option's
    source (not yet in its callback)."""
    from click.core import ParameterSource

    if click.get_current_context().get_parameter_source(param) is not ParameterSource.DEFAULT:
        return
    from ..dataset_folders import dataset_path, list_datasets
    from ..datasets import MANIFEST
    from ..errors import DatasetError

    root = dataset_path(value)
    if (root / MANIFEST).exists():
        return
    known = sorted(list_datasets())
    raise DatasetError(
        f"no --dataset given, and the default dataset, {value}, is not there", path=root,
        fix=f"pass --dataset NAME (datasets here: {', '.join(known)}), or make the {value} "
            f"dataset with `tapcheck synth --dataset {value}`" if known else
            f"make it with `tapcheck synth --dataset {value}`, or record or import takes of "
            "your own and pass --dataset NAME")
