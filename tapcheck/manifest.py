"""``manifest.csv``: reading it with every row checked, and adding a row without rewriting it.

A manifest is outside input like a clip: a spreadsheet may have edited it, or someone hostile.
Every row is checked when it is read, by the same rules ``import`` applies to its options, and a
bad row is a :class:`~tapcheck.errors.DatasetError` naming its line. In particular a take's path
must stay inside the dataset folder: a row ``../../../../etc/passwd`` or ``/etc/passwd`` would
otherwise make ``train`` or ``doctor`` open any file on the machine.

Adding a take appends one row (one ``write`` of a few dozen bytes, then fsync) instead of
rewriting and re-parsing the whole file: importing into a dataset of 10^5 takes costs the same as
into an empty one.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import math
import os
import posixpath
import re
from pathlib import Path
from typing import Any, Callable

from .errors import DatasetError, ParameterError
from .console import one_line
from .files import atomic_write, storage_error
from .file_kinds import refuse_special

MANIFEST = "manifest.csv"
MANIFEST_FIELDS = ("path", "board", "side", "label", "group", "split", "take", "recorded_at",
                   "sample_rate", "duration_s", "source", "peak_dbfs")
HEADER = ",".join(MANIFEST_FIELDS)
LABELS = ("normal", "defect")
SPLITS = ("train", "test")
# \Z, not $: "$" matches before a last line break, and `--side $'left\n'` made a second side
# of the same end, and a dataset named so that no --dataset could reach (QA)
SLUG = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]*\Z")
# board numbers are painted on boards, not counted in billions; a bound keeps them storable as
# SQLite integers in the inspection log and short in file names
MAX_BOARD = 999_999


def missing_columns(header: list[str]) -> list[str]:
    """The manifest columns a CSV header lacks ([] for a tapcheck manifest's)."""
    return [f for f in MANIFEST_FIELDS if f not in header]


def check_take_path(text: str) -> str | None:
    """What is wrong with a manifest ``path`` (relative, inside the dataset), or None."""
    if not text:
        return "has an empty path"
    if text != text.strip():  # a spreadsheet's padding; no take's file is named so
        return f"has spaces around its path {text!r}"
    if "\0" in text or "\\" in text:
        return f"has a path with a NUL or backslash: {text!r}"
    # string tests, not PurePosixPath: this runs for every row of a 10^5-row manifest
    if text.startswith("/"):
        return f"has an absolute path {text!r}; takes must lie inside the dataset folder"
    if ".." in text.split("/"):
        # refused even where it comes back: through a folder that is a link, '..' is the
        # link target's parent, which normpath's reading of the string is not
        norm = posixpath.normpath(text)
        if norm != ".." and not norm.startswith("../"):
            # a file's path written the long way round: its short form is the fix ('board01/..'
            # or 'x.wav/..' name no file, and "write it '.'" was refused in turn; review)
            fix = (f" (write it {norm!r})" if text.rsplit("/", 1)[-1] not in ("..", ".", "")
                   else "")
            return f"has a path {text!r} with '..' in it, which a take's path never has{fix}"
        return f"has a path {text!r} that leaves the dataset folder ('..')"
    if not text.strip("./"):  # ".", "./": the dataset's folder, read as a take gone missing
        return f"has a path {text!r} that names the dataset's folder, not a take's file"
    return None


MAX_LINE = 1_000_000  # characters in a manifest line (over csv's field limit, 131 072)
MAX_TAKE = 2**31 - 1  # a take number a manifest holds (a 32-bit int for other tools)


def _whole(text: str, lo: int, what: str, hi: int = MAX_TAKE) -> int:
    if isinstance(text, str) and not text.isascii():  # int() reads "١" (Arabic-Indic) as 1
        raise ValueError(f"{what} must be written in the digits 0-9, not {text!r}")
    try:
        value = int(text)
    except ValueError:  # "invalid literal for int() with base 10: 'abc'" was Python's (QA)
        raise ValueError(f"{what} must be a whole number, not {text!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"{what} must be between {lo} and {hi}, not {value}")
    return value


def _real(text: str, what: str, *, lo: float = -math.inf, allow_minus_inf: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:  # "could not convert string to float: 'x'" was Python's
        raise ValueError(f"{what} must be a number, not {text!r}") from None
    if math.isnan(value) or value == math.inf or (value == -math.inf and not allow_minus_inf):
        raise ValueError(f"{what} must be a finite number, not {text}")
    if value < lo:
        raise ValueError(f"{what} must be >= {lo:g}, not {text}")
    return value


def parse_row(row: dict[str, Any], make: Callable[..., Any], where: str) -> Any:
    """One checked row as ``make(**fields)``; anything wrong is a DatasetError naming ``where``."""
    try:
        values = dict(
            path=row["path"] or "", board=_whole(row["board"], 0, "board", MAX_BOARD),
            side=row["side"] or "", label=row["label"] or "", group=row["group"] or "",
            split=row["split"] or "", take=_whole(row["take"], 0, "take"),
            recorded_at=row["recorded_at"] or "",
            sample_rate=_whole(row["sample_rate"], 1, "sample_rate"),
            duration_s=_real(row["duration_s"], "duration_s", lo=0.0),
            source=row["source"] or "",
            # a silent take's peak is -inf dBFS (see audio.peak_dbfs), written as "-inf"
            peak_dbfs=_real(row["peak_dbfs"], "peak_dbfs", allow_minus_inf=True))
    except (TypeError, ValueError) as e:
        raise DatasetError(f"malformed row ({e})", path=where,
                           fix="fix or delete the row") from None
    problem = check_take_path(values["path"])
    if problem:
        raise DatasetError(problem, path=where, fix="fix or delete the row")
    # one file, one spelling: "./board01/x.wav" or "board01//x.wav" is board01/x.wav, so a
    # row repeated in another spelling is caught as the duplicate it is (counted twice else)
    values["path"] = posixpath.normpath(values["path"])
    if values["label"] not in LABELS:
        raise DatasetError(f"unknown label '{values['label']}'", path=where,
                           fix=f"use one of: {', '.join(LABELS)}")
    if values["split"] not in SPLITS:
        raise DatasetError(f"unknown split '{values['split']}'", path=where,
                           fix=f"use one of: {', '.join(SPLITS)}")
    for key in ("side", "group"):
        if (values[key] or key == "side") and not SLUG.match(values[key]):
            raise DatasetError(f"{key} '{values[key]}' is not letters, digits, '-' or '_'",
                               path=where, fix="fix or delete the row")
        if len(values[key]) > MAX_SLUG:  # as record and import hold it: a 100 000-character
            # group printed `info` as a 1.9 MB table (QA)
            raise DatasetError(f"{key} is {len(values[key])} characters long; a {key} name has "
                               f"at most {MAX_SLUG}", path=where, fix="shorten it in the row")
    return make(**values)


def read_manifest(path: Path, make: Callable[..., Any]) -> tuple[list, bool, list[str]]:
    """Every row, checked, as ``make(**fields)``; whether the header is exactly ours; and the
    header's columns of its own (not tapcheck's), which tapcheck reads past but cannot write.

    Raises
    ------
    DatasetError
        Unreadable, not a manifest, or a bad row (naming ``path:line``).
    """
    refuse_special(path, DatasetError, fix="a manifest is a CSV file; restore it from a backup")
    if path.is_dir():
        raise DatasetError("is a folder, not the CSV file a dataset's manifest is", path=path,
                           fix="move the folder aside and restore the manifest from a backup")
    try:
        raw = path.read_bytes()
    except OSError as e:
        # the reason alone: "[Errno 13] Permission denied: 'recordings/x/manifest.csv'" named
        # the path a second time
        # a manifest this user may not read is whole: "restore it from a backup" sent a user
        # to replace it (QA)
        denied = isinstance(e, PermissionError)
        raise DatasetError(f"cannot be read ({e.strerror or e})", path=path,
                           fix="check its permissions (chmod a+r, or ask its owner)" if denied
                           else "restore it from a backup or rebuild it") from None
    text = _utf8(raw, path)
    # a row is a few hundred characters: a line of 30 million commas took 900 MB and 9 s to
    # split into fields before its error (QA)
    long = None if len(text) <= MAX_LINE else next(
        (i for i, line in enumerate(re.split(r"\r\n|\r|\n", text), 1) if len(line) > MAX_LINE),
        None)
    if long is not None:
        raise DatasetError(f"this line is over {MAX_LINE:,} characters long, which no "
                           "manifest row is", path=f"{path}:{long}",
                           fix="fix or delete that line (restore the manifest from a backup)")
    try:
        return _parse(text, path, make)
    except csv.Error as e:  # a traceback, exit 1, and `datasets` listed no other dataset
        line = e.args[1] if len(e.args) > 1 else None
        problem, fix = f"is not CSV the reader can follow ({e.args[0]})", \
            "fix or delete that line"
        if "field larger than field limit" in str(e):
            problem = (f"has a value longer than {csv.field_size_limit()} characters (a double "
                       "quote left open?)")
            fix = "close the quote, or delete the row"
            # the line that long, where there is one (csv's count skipped blank lines)
            long = [i for i, text_line in enumerate(re.split(r"\r\n|\r|\n", text), 1)
                    if len(text_line) > csv.field_size_limit()]
            line = long[0] if long else line
        raise DatasetError(problem, path=f"{path}:{line}" if line else path, fix=fix) from None


def _parse(text: str, path: Path, make: Callable[..., Any]) -> tuple[list, bool, list[str]]:
    """:func:`read_manifest` of the text read; csv's own errors carry the line as ``args[1]``.
    """
    # newline="": the csv module's own reading of line breaks, a Mac's bare CR among them
    # (a CR-only manifest, "CSV (Macintosh)", was a traceback in every command)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = list(reader.fieldnames or [])
    except csv.Error as e:
        raise csv.Error(str(e), reader.line_num) from None
    # blank names are a spreadsheet's empty trailing columns, not columns of their own
    repeated = next((name for i, name in enumerate(header)
                     if name.strip() and name in header[:i]), None)
    if repeated is not None:  # DictReader keeps the last one: every board read as board 99
        raise DatasetError(f"names the column '{repeated}' twice in its header", path=path,
                           fix="delete or rename one of the two columns")
    missing = missing_columns(header)
    if not text.strip():  # a 0-byte manifest read "no column path, board, ..." (QA)
        raise DatasetError("is empty, not a tapcheck manifest", path=path,
                           fix=f"the header must be: {HEADER} (a dataset without takes has "
                               "only that line)")
    if missing:
        raise DatasetError(f"is not a tapcheck manifest (no column {', '.join(missing)})",
                           path=path, fix=f"the header must be: {HEADER}")
    takes, seen = [], {}
    rows = iter(reader)
    # the file's lines as csv counts them (str.splitlines also breaks at U+2028 and others)
    last_line = _breaks(text) + (not text.endswith(("\r", "\n")))
    quote_open = _quote_left_open(text)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as e:
            raise csv.Error(str(e), reader.line_num + 1) from None
        # the reader's count of lines read, back to the row's first line (a quoted value may
        # hold line breaks): a blank line, which it skips, must not shift the lines named
        # (a long row's surplus values are a list, under the key None: counted too)
        extra = row.get(None)
        values = [v for v in row.values() if isinstance(v, str)] + list(extra or [])
        breaks = sum(_breaks(v) for v in values)
        at_end = quote_open and reader.line_num == last_line  # the row that ran to the end
        if at_end and values and values[-1][-1:] in ("\n", "\r"):
            breaks -= 1  # a quote left open ran to the end: the file's last break is no line
        line = reader.line_num - breaks
        where = f"{path}:{line}"
        if at_end:  # whichever column it opened in: the rest of the file was one value, read
            # silently into a column of the manifest's own or named as a malformed number
            raise DatasetError("opens a double quote that is never closed: the rest of the file "
                               "reads as one value", path=where,
                               fix="close the quote (or delete it), or delete the row")
        # DictReader fills a short row's missing fields with None (columns of ours only: a
        # short row of a manifest with extra columns of its own was read, and still is)
        short = [f for f in MANIFEST_FIELDS if row[f] is None]
        if short:
            fields = sum(v is not None for k, v in row.items() if k is not None)
            raise DatasetError(
                f"has {fields} field(s), the header names {len(reader.fieldnames)} (it ends "
                f"before '{short[0]}')", path=where,
                fix="fix the row (a value per column, separated by commas) or delete it")
        # a long row's surplus was dropped, the row read as if whole, when a stray comma or an
        # unquoted one inside a value may have shifted what its values mean
        if extra:
            names = len(reader.fieldnames)
            raise DatasetError(
                f"has {names + len(extra)} field(s), the header names {names} ({len(extra)} "
                f"more after '{reader.fieldnames[-1]}')", path=where,
                fix="fix the row (a value per column, separated by commas; a value holding a "
                    "comma goes in double quotes) or delete it")
        take = parse_row(row, make, where)
        if take.path in seen:
            raise DatasetError(f"duplicate row for {take.path} (first on line {seen[take.path]})",
                               path=where, fix="delete one of the two rows")
        seen[take.path] = line
        takes.append(take)
    ours = tuple(header) == MANIFEST_FIELDS and text.startswith(HEADER)
    own = [name for name in header if name not in MANIFEST_FIELDS and name.strip()]
    return takes, ours, own + _filled_blank_columns(text, header)


def _filled_blank_columns(text: str, header: list[str]) -> list[str]:
    """Blank-named columns that some row holds a value in, named by their place ("column 14"):
    a header's trailing commas are a spreadsheet's empty columns, lost by nothing when the
    manifest is rewritten, but a value under one is the user's. Read by position: DictReader
    keeps one value per name, and two blank names kept only the last column's."""
    blank = [i for i, name in enumerate(header) if not name.strip()]
    if not blank:
        return []
    filled = set()
    for row in itertools.islice(csv.reader(io.StringIO(text, newline="")), 1, None):
        filled.update(i for i in blank if i < len(row) and row[i].strip())
    return [f"column {i + 1}" for i in sorted(filled)]


def _quote_left_open(text: str) -> bool:
    """Whether a double quote is still open at the end of the text, as the lenient reader reads
    quotes (it takes the rest of the file as that value without a word): a quote opens a
    quoted value only at a value's start, two in one stand for one, and text after a closing
    quote joins the value. The csv module's strict mode stopped at the first value like
    ``"synth"x`` and missed a later open quote (review)."""
    if '"' not in text:  # tapcheck writes no quotes: most manifests end here
        return False
    start, plain, quoted, closing = range(4)
    state = start
    for ch in text:
        if state == quoted:
            state = closing if ch == '"' else quoted
        elif ch in ",\r\n":
            state = start
        elif state == start:
            state = quoted if ch == '"' else plain
        elif state == closing:
            state = quoted if ch == '"' else plain
    return state == quoted


def _breaks(value: str) -> int:
    """Line breaks in a value as the csv reader counts lines: CR LF, LF or a bare CR."""
    return len(re.findall(r"\r\n|\r|\n", value))


def _utf8(raw: bytes, path: Path) -> str:
    """A manifest's text; one saved in another encoding is named at its first foreign byte."""
    body = raw.removeprefix(codecs.BOM_UTF8)  # a manifest saved by a spreadsheet starts so
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # its byte-order mark was blamed on Latin-1 ("byte 0xff at column 1")
        raise DatasetError("is UTF-16 text, not UTF-8 (a spreadsheet's 'Unicode Text', or "
                           "PowerShell's Out-File)", path=path,
                           fix="save it as UTF-8 (a spreadsheet's 'CSV UTF-8')")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        # the codec's message ("can't decode byte 0xe9 in position 119") counts bytes from the
        # start of the file; an editor shows lines
        start = body.rfind(b"\n", 0, e.start) + 1
        line = body.count(b"\n", 0, e.start) + 1
        column = len(body[start:e.start].decode("utf-8")) + 1  # all UTF-8 before the byte
        raise DatasetError(
            f"is not UTF-8 text: byte 0x{body[e.start]:02x} at column {column} "
            "(saved as Latin-1 or Windows-1252?)", path=f"{path}:{line}",
            fix="save it as UTF-8 (a spreadsheet's 'CSV UTF-8')") from None


def format_rows(rows: list[dict[str, Any]], *, header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_manifest(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite the whole manifest atomically."""
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        f.write(format_rows(rows, header=True))


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Add one row at the end of an existing manifest of our header, flushed to disk.

    One ``write`` of one short line in append mode: a crash leaves the manifest as it was or with
    the row. A file that does not end in a newline (saved by a spreadsheet) gets one first, so the
    new row never joins the last one. The row ends as the file's first line does (CRLF from a
    Windows editor, a bare CR): an LF row at the end of a CRLF file mixed the two (QA).
    """
    data = format_rows([row], header=False).encode("utf-8")
    try:
        # O_NOFOLLOW: a manifest that is a link to a file elsewhere is never written through
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as e:
        raise storage_error(e, path) from None
    try:
        size = os.fstat(fd).st_size
        ending = _line_ending(os.pread(fd, 1 << 16, 0))
        data = data[:-1] + ending  # format_rows ends the row with "\n"
        # any break ends the last row: a CRLF file whose last row a tool ended in LF got a
        # blank line between (review)
        if size and os.pread(fd, 1, size - 1) not in (b"\n", b"\r"):
            data = ending + data
        written = os.write(fd, data)
        if written != len(data):  # a short write: the disk filled up mid-row; take it back
            os.ftruncate(fd, size)
            raise OSError(28, "No space left on device")
        os.fsync(fd)
    except OSError as e:
        raise storage_error(e, path) from None
    finally:
        os.close(fd)


def _line_ending(head: bytes) -> bytes:
    """The line break of the first line of ``head``: CRLF, a bare CR or (none found) LF."""
    found = re.search(rb"\r\n|\r|\n", head)
    return found.group() if found else b"\n"


#: characters in a side or group name: a side is a folder's name, and both are printed on one
#: line (a 256-letter side passed, and import failed at the folder, leaving the dataset's behind)
MAX_SLUG = 64
_SLUG_EXAMPLE = {"side": "left", "group": "reference"}


def check_slug(value: str, what: str) -> str:
    """A side or group name must be safe as a folder name."""
    example = f"e.g. --{what} {_SLUG_EXAMPLE.get(what, 'left')}"
    if len(value) > MAX_SLUG:
        raise ParameterError(f"{what} '{value[:20]}…' is {len(value)} characters long; a {what} "
                             f"name has at most {MAX_SLUG}", fix=example)
    if not SLUG.match(value):
        # ASCII: "must be letters" refused `é`, which is one (QA)
        # one line however it is spelt; "must be ... '-'" of '-x' read as a contradiction (QA)
        raise ParameterError(f"{what} '{one_line(value)}' must be ASCII letters, digits, '-' or "
                             "'_', beginning with a letter or digit", fix=example)
    return value


def check_row_values(*, board: int, side: str, label: str, split: str, group: str) -> None:
    """A new row's values (``record``, ``import``, :meth:`tapcheck.datasets.Dataset.add_take`),
    before anything is written: a board number in range, safe side and group names, a known
    label and split."""
    if not isinstance(board, int) or not 0 <= board <= MAX_BOARD:
        raise ParameterError(f"board must be a whole number from 0 to {MAX_BOARD}, "
                             f"not {board!r}")
    check_slug(side, "side")
    if group:
        check_slug(group, "group")
    if label not in LABELS:
        raise ParameterError(f"label must be one of {', '.join(LABELS)}, not '{label}'")
    if split not in SPLITS:
        raise ParameterError(f"split must be one of {', '.join(SPLITS)}, not '{split}'")
