"""Datasets on disk: layout, manifest, filters, never overwriting a take."""

import csv

import numpy as np
import pytest

from tapcheck.dataset_folders import list_datasets
from tapcheck.datasets import MANIFEST_FIELDS, Dataset
from tapcheck.errors import DatasetError, ParameterError


def _tap(n=4410):
    return (np.sin(np.arange(n) / 9) * 0.3).astype(np.float32)


def test_add_take_layout_and_manifest(tmp_path):
    ds = Dataset.create(tmp_path / "bench")
    t1 = ds.add_take(_tap(), sr=44100, board=3, side="left", label="normal", source="mic")
    t2 = ds.add_take(_tap(), sr=44100, board=3, side="left", label="normal", source="mic")
    assert (t1.path, t2.path) == ("board03/left/take001.wav", "board03/left/take002.wav")
    rows = list(csv.DictReader(open(tmp_path / "bench" / "manifest.csv")))
    assert list(rows[0]) == list(MANIFEST_FIELDS)
    assert rows[1]["take"] == "2" and rows[1]["sample_rate"] == "44100"
    assert float(rows[0]["duration_s"]) == pytest.approx(0.1)
    assert float(rows[0]["peak_dbfs"]) == pytest.approx(-10.46, abs=0.05)
    reopened = Dataset.open(tmp_path / "bench")
    assert [t.take for t in reopened.takes] == [1, 2]


def test_takes_are_numbered_after_files_on_disk(tmp_path):
    """A WAV without a manifest row (e.g. after a crash) is never overwritten."""
    ds = Dataset.create(tmp_path / "bench")
    ds.add_take(_tap(), sr=44100, board=1, side="right", label="normal")
    orphan = tmp_path / "bench" / "board01" / "right" / "take007.wav"
    orphan.write_bytes(b"precious")
    take = ds.add_take(_tap(), sr=44100, board=1, side="right", label="normal")
    assert take.take == 8 and orphan.read_bytes() == b"precious"


def test_takes_are_numbered_after_every_file_name_a_row_gives(tmp_path):
    """A row edited by hand to name board01/left/take004.wav for board 2 (its file absent): the
    next board-1 take was written there, and the manifest then named that path twice and no
    command could read the dataset (QA)."""
    ds = Dataset.create(tmp_path / "bench")
    ds.add_take(_tap(), sr=44100, board=1, side="left", label="normal")
    ds.add_take(_tap(), sr=44100, board=2, side="left", label="normal")
    rows = list(csv.DictReader(open(tmp_path / "bench" / "manifest.csv")))
    rows[1].update(path="board01/left/take004.wav", take="9")  # board 2's row, edited
    (tmp_path / "bench" / "board02" / "left" / "take001.wav").unlink()
    with open(tmp_path / "bench" / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    take = Dataset.open(tmp_path / "bench").add_take(_tap(), sr=44100, board=1, side="left",
                                                     label="normal")
    assert take.path == "board01/left/take005.wav"
    assert len(Dataset.open(tmp_path / "bench").takes) == 3  # still readable


def test_no_take_is_numbered_past_what_a_manifest_holds(tmp_path):
    """A stray take99999999999.wav made the next take 100000000000, whose row no reader takes:
    the dataset was locked out. Refused before anything is written."""
    ds = Dataset.create(tmp_path / "bench")
    ds.add_take(_tap(), sr=44100, board=1, side="left", label="normal")
    stray = tmp_path / "bench" / "board01" / "left" / "take99999999999.wav"
    stray.write_bytes(b"")
    manifest = (tmp_path / "bench" / "manifest.csv").read_bytes()
    with pytest.raises(DatasetError) as e:
        ds.add_take(_tap(), sr=44100, board=1, side="left", label="normal")
    assert str(e.value) == (
        f"{stray}: has a take numbered 99999999999, the largest a manifest holds is 2147483647: "
        "no take can be numbered after it; nothing was written — rename that file to a smaller "
        "number (or move it out), or fix its row")
    assert (tmp_path / "bench" / "manifest.csv").read_bytes() == manifest
    assert len(Dataset.open(tmp_path / "bench").takes) == 1


def test_select_filters(tiny_dataset):
    ds = tiny_dataset
    assert {t.board for t in ds.select(split="train", label="defect")} == {5, 6}
    assert {t.side for t in ds.select(board=7)} == {"left"}
    assert len(ds.select(board=[11, 12], side="left")) == 2 * 5
    assert all(t.group == "similar-material" for t in ds.select(group="similar-material"))
    assert ds.select(board=99) == []


@pytest.mark.parametrize("edit, match", [
    (lambda rows: rows[1].__setitem__("label", "cracked"), "unknown label 'cracked'"),
    (lambda rows: rows.append(dict(rows[1])), "duplicate row"),
    # the same file in another spelling is the same take
    (lambda rows: rows.append({**rows[1], "path": "./" + rows[1]["path"]}),
     "duplicate row for board01/left/take002.wav"),
    (lambda rows: rows.append({**rows[0], "path": rows[0]["path"].replace("/", "//")}),
     "duplicate row for board01/left/take001.wav"),
    # a spreadsheet's padding is named as such, not reported as a missing file
    (lambda rows: rows[1].__setitem__("path", rows[1]["path"] + " "), "spaces around its path"),
    # in tapcheck's words, not Python's ("invalid literal for int() with base 10"; QA)
    (lambda rows: rows[1].__setitem__("board", "three"),
     r"malformed row \(board must be a whole number, not 'three'\)"),
    (lambda rows: rows[1].__setitem__("duration_s", "3 s"),
     r"malformed row \(duration_s must be a number, not '3 s'\)"),
    # a '..' that comes back into the dataset is not said to leave it (QA)
    (lambda rows: rows[1].__setitem__("path", "board01/left/../left/take002.wav"),
     "has a path 'board01/left/../left/take002.wav' with '..' in it, which a take's path "
     "never has \\(write it 'board01/left/take002.wav'\\)"),
    (lambda rows: rows[1].__setitem__("path", "board01/../../take002.wav"),
     "that leaves the dataset folder"),
    (lambda rows: rows[1].__setitem__("path", "board01/left/take002.wav/.."),
     "with '..' in it, which a take's path never has — fix"),
    # int() reads other scripts' digits: an Arabic-Indic one was board 1
    (lambda rows: rows[1].__setitem__("board", "\u0661"),
     "board must be written in the digits 0-9"),
    (lambda rows: rows[1].__setitem__("split", "validation"), "unknown split"),
])
def test_bad_manifests_name_the_line(tmp_path, edit, match):
    ds = Dataset.create(tmp_path / "bench")
    for _ in range(2):
        ds.add_take(_tap(), sr=44100, board=1, side="left", label="normal")
    path = tmp_path / "bench" / "manifest.csv"
    rows = list(csv.DictReader(open(path)))
    edit(rows)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(DatasetError, match=match) as e:
        Dataset.open(tmp_path / "bench")
    assert "manifest.csv:" in str(e.value)


def _two_takes(tmp_path):
    ds = Dataset.create(tmp_path / "bench")
    for _ in range(2):
        ds.add_take(_tap(), sr=44100, board=1, side="left", label="normal", source="mic")
    return tmp_path / "bench" / "manifest.csv"


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["plain", "spreadsheet-bom"])
def test_a_manifest_in_latin1_is_named_at_its_line_with_the_fix_to_save_it_as_utf8(tmp_path,
                                                                                  bom):
    """It said "cannot be read ('utf-8' codec can't decode byte 0xe9 in position 119...) —
    restore it from a backup or rebuild it": a byte count, and a fix that loses the file."""
    path = _two_takes(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = lines[2].replace(",mic,", ",Mikrofon B\u00f6hm,")  # the second take: line 3
    column = lines[2].index("\u00f6") + 1  # ASCII before it: characters are bytes
    path.write_bytes(bom + "".join(lines).encode("latin-1"))
    with pytest.raises(DatasetError) as e:
        Dataset.open(tmp_path / "bench")
    assert str(e.value) == (
        f"{path}:3: is not UTF-8 text: byte 0xf6 at column {column} (saved as Latin-1 or "
        "Windows-1252?) — save it as UTF-8 (a spreadsheet's 'CSV UTF-8')")
    path.write_bytes(bom + "".join(lines).encode("utf-8"))  # the fix: saved as UTF-8, it opens
    assert [t.source for t in Dataset.open(tmp_path / "bench").takes] == [
        "mic", "Mikrofon B\u00f6hm"]


def test_a_manifest_in_utf16_is_named_so(tmp_path):
    """Its byte-order mark read as "byte 0xff at column 1 (saved as Latin-1 ...?)"."""
    path = _two_takes(tmp_path)
    path.write_bytes(path.read_text(encoding="utf-8").encode("utf-16"))
    with pytest.raises(DatasetError) as e:
        Dataset.open(tmp_path / "bench")
    assert str(e.value) == (f"{path}: is UTF-16 text, not UTF-8 (a spreadsheet's 'Unicode "
                            "Text', or PowerShell's Out-File) — save it as UTF-8 (a "
                            "spreadsheet's 'CSV UTF-8')")


def test_a_row_with_too_few_fields_says_so_at_its_line(tmp_path):
    """It said "malformed row (int() argument must be a string, ... not 'NoneType')"; a blank
    line before the row must not shift the line named."""
    path = _two_takes(tmp_path)
    with open(path, "a", encoding="utf-8") as f:
        f.write("\nboard01/left/take005.wav,1,left\n")  # line 4 blank, the row on line 5
    with pytest.raises(DatasetError) as e:
        Dataset.open(tmp_path / "bench")
    assert str(e.value) == (
        f"{path}:5: has 3 field(s), the header names {len(MANIFEST_FIELDS)} (it ends before "
        "'label') — fix the row (a value per column, separated by commas) or delete it")


@pytest.mark.parametrize("own_column", [False, True], ids=["ours", "with-a-column-of-its-own"])
def test_a_row_with_too_many_fields_says_so_at_its_line(tmp_path, own_column):
    """A value past the last column (a stray comma, a value holding an unquoted comma) was
    dropped without a word, the row read as if it were whole. A manifest with a column of its
    own counts that column: its rows have one value more, and one past it is refused."""
    path = _two_takes(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if own_column:
        lines = [lines[0] + ",note", *(line + ",ok" for line in lines[1:])]
    lines[2] += ',"spare\nvalue"'  # the second take, line 3; a line break to count back
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as e:
        Dataset.open(tmp_path / "bench")
    names, last = (13, "note") if own_column else (12, "peak_dbfs")
    assert str(e.value) == (
        f"{path}:3: has {names + 1} field(s), the header names {names} (1 more after '{last}') "
        "— fix the row (a value per column, separated by commas; a value holding a comma goes "
        "in double quotes) or delete it")
    lines[2] = lines[2].removesuffix(',"spare\nvalue"')  # the fix: the row as the header says
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert len(Dataset.open(tmp_path / "bench").takes) == 2


@pytest.mark.parametrize("newline", ["\r", "\r\n"], ids=["mac-cr", "crlf"])
def test_a_manifest_of_other_line_breaks_is_read_and_takes_a_new_row(tmp_path, newline):
    """A spreadsheet's "CSV (Macintosh)" ends its lines with a bare CR: every command that read
    it stopped with a traceback (exit 1), and `datasets` listed no other dataset (QA)."""
    path = _two_takes(tmp_path)
    path.write_bytes(path.read_bytes().replace(b"\n", newline.encode()))
    ds = Dataset.open(tmp_path / "bench")
    assert [t.take for t in ds.takes] == [1, 2]
    ds.add_take(_tap(), sr=44100, board=1, side="left", label="normal")
    assert [t.take for t in Dataset.open(tmp_path / "bench").takes] == [1, 2, 3]
    # the new row ends as the others do: an LF row after CRLF ones mixed the two (QA)
    text = path.read_bytes()
    assert text.endswith(newline.encode()) and text.count(newline.encode()) == 4
    assert b"\n" not in text.replace(b"\r\n", b"")
    # and the file's last row without its line break gets the file's own
    path.write_bytes(text.removesuffix(newline.encode()))
    ds.add_take(_tap(), sr=44100, board=1, side="left", label="normal")
    text = path.read_bytes()
    assert text.count(newline.encode()) == 5 and text.endswith(newline.encode())
    assert b"\n" not in text.replace(b"\r\n", b"")
    assert [t.take for t in Dataset.open(tmp_path / "bench").takes] == [1, 2, 3, 4]
    # a last row another tool ended with LF: the new row follows it, no blank line between
    path.write_bytes(text.removesuffix(newline.encode()) + b"\n")
    ds.add_take(_tap(), sr=44100, board=1, side="left", label="normal")
    assert b"\n\r" not in path.read_bytes() and b"\n\n" not in path.read_bytes()
    assert [t.take for t in Dataset.open(tmp_path / "bench").takes] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("where", ["source", "peak_dbfs", "own-column", "u2028",
                                   "after-a-quoted-value-run-on"])
def test_a_quote_left_open_is_named_at_its_line(tmp_path, where):
    """An unclosed quote swallows the rest of the file: on line 3 it was named as line 2 (a
    short row), as a 46 kB "malformed row" line (in a number), or not at all (in a column of
    the manifest's own: 2 takes read of 7); a U+2028 in a value shifted the line (review)."""
    path = _two_takes(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if where == "own-column":
        lines = [lines[0] + ",note", *(line + ",fine" for line in lines[1:])]
    rows = [lines[2]] * 5
    opened = {"source": rows[0].replace(",mic,", ',"mic,'),
              "peak_dbfs": rows[0].rsplit(",", 1)[0] + ',"' + rows[0].rsplit(",", 1)[1],
              "own-column": rows[0].removesuffix(",fine") + ',"fine',
              "u2028": rows[0].replace(",mic,", ',"mic,')}.get(where)
    if where == "u2028":
        lines[1] = lines[1].replace(",mic,", ',"m\u2028ic",')
    if where == "after-a-quoted-value-run-on":  # '"mi"c' reads as mic; strict csv stopped there
        lines[1] = lines[1].replace(",mic,", ',"mi"c,')
        opened = rows[0].replace(",mic,", ',"mic,')
    text = "\n".join([*lines[:2], opened,
                      *(r.replace("take002", f"take{k:03d}") for k, r in enumerate(rows, 3))])
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as e:
        Dataset.open(tmp_path / "bench")
    assert str(e.value) == (f"{path}:3: opens a double quote that is never closed: the rest of "
                            "the file reads as one value — close the quote (or delete it), or "
                            "delete the row")


def test_a_line_no_row_could_be_and_an_overlong_group_are_refused(tmp_path):
    """A line of millions of commas took 900 MB and seconds to split into fields before its
    error; a 100 000-character group printed `info` as a 1.9 MB table (QA)."""
    path = _two_takes(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([*lines, "," * 2_000_000]) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as e:
        Dataset.open(tmp_path / "bench")
    assert str(e.value) == (f"{path}:4: this line is over 1,000,000 characters long, which "
                            "no manifest row is — fix or delete that line (restore the "
                            "manifest from a backup)")
    group = lines[1].split(",")[4]
    path.write_text("\n".join([lines[0], lines[1].replace(f",{group},", "," + "g" * 65 + ",", 1),
                               lines[2]]) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as e:
        Dataset.open(tmp_path / "bench")
    assert str(e.value) == (f"{path}:2: group is 65 characters long; a group name has at most "
                            "64 — shorten it in the row")


def test_a_huge_value_is_named_at_its_line(tmp_path):
    """A value over the csv module's limit was a traceback; after blank lines, one line early."""
    path = _two_takes(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    huge = [lines[0], "", "", lines[1], lines[2].replace(",mic,", "," + "m" * 200_000 + ",")]
    path.write_text("\n".join(huge) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as e:
        Dataset.open(tmp_path / "bench")
    assert str(e.value) == (f"{path}:5: has a value longer than 131072 characters (a double "
                            "quote left open?) — close the quote, or delete the row")


def test_a_column_named_twice_is_refused_not_read_as_its_last_copy(tmp_path):
    """A header naming 'board' twice read every row's board from the last copy (every board
    board 99), and a take added wrote that over the real numbers."""
    path = _two_takes(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0] + ",board", *(x + ",99" for x in lines[1:])]) + "\n",
                    encoding="utf-8")
    with pytest.raises(DatasetError) as e:
        Dataset.open(tmp_path / "bench")
    assert str(e.value) == (f"{path}: names the column 'board' twice in its header — delete or "
                            "rename one of the two columns")


def test_a_manifest_with_columns_of_its_own_is_read_and_never_rewritten_without_them(tmp_path):
    """An inspector's notes column was dropped without a word by the next take added (the
    manifest is rewritten with tapcheck's columns): refused before anything is written."""
    path = _two_takes(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0] + ",notes", lines[1] + ",cracked?", lines[2] + ","])
                    + "\n", encoding="utf-8")
    def files():  # the writers' lock file aside
        return {p: p.read_bytes() for p in (tmp_path / "bench").rglob("*")
                if p.is_file() and p.name != ".lock"}

    before = files()
    ds = Dataset.open(tmp_path / "bench")
    assert len(ds.takes) == 2  # read as ever
    with pytest.raises(DatasetError) as e:
        ds.add_take(_tap(), sr=44100, board=1, side="left", label="normal")
    assert str(e.value) == (
        f"{path}: has column(s) 'notes' that tapcheck does not keep: adding a take would "
        "rewrite it without them; nothing was written — move those columns to a file of their "
        "own (keyed by path), then run again")
    assert files() == before
    # doctor names them: it said "nothing to fix" of a dataset import then refused (QA)
    from tapcheck.datasetcheck import check_dataset

    _, findings = check_dataset(tmp_path / "bench")
    assert any(f.level == "note" and "has column(s) 'notes' that tapcheck does not keep: "
               "import and record add no take to it" in f.message for f in findings), findings
    # a spreadsheet's empty trailing column holds nothing to lose: written as ever
    path.write_text("\n".join([lines[0] + ",,", lines[1] + ",,", lines[2] + ",,"]) + "\n",
                    encoding="utf-8")
    Dataset.open(tmp_path / "bench").add_take(_tap(), sr=44100, board=1, side="left",
                                              label="normal")
    assert path.read_text(encoding="utf-8").splitlines()[0] == ",".join(MANIFEST_FIELDS)
    # ...but a note under one of two blank-named columns is the user's (DictReader kept only
    # the last one's value, and the note was dropped)
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0] + ",,", lines[1] + ",check again,",
                               *(x + ",," for x in lines[2:])]) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="has column\\(s\\) 'column 13' that tapcheck does "):
        Dataset.open(tmp_path / "bench").add_take(_tap(), sr=44100, board=1, side="left",
                                                  label="normal")
    assert "check again" in path.read_text(encoding="utf-8")


def test_not_a_manifest(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "manifest.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="not a tapcheck manifest"):
        Dataset.open(tmp_path / "x")
    # an empty one is named so: it read "no column path, board, label, side, ..." (QA)
    (tmp_path / "x" / "manifest.csv").write_text("\n")
    with pytest.raises(DatasetError) as e:
        Dataset.open(tmp_path / "x")
    assert e.value.problem == "is empty, not a tapcheck manifest"
    assert e.value.fix.startswith("the header must be: path,board,")


def test_unknown_dataset_lists_known_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(tmp_path))
    Dataset.create("alpha").add_take(_tap(), sr=44100, board=1, side="left", label="normal")
    assert list_datasets() == ["alpha"]
    with pytest.raises(DatasetError, match="datasets here: alpha"):
        Dataset.open("beta")
    # `--dataset alpha/` is a folder from here: "no such dataset — datasets here: alpha" read
    # as a contradiction
    monkeypatch.chdir(tmp_path.parent)
    with pytest.raises(DatasetError) as e:
        Dataset.open("alpha/")
    assert e.value.fix == (f"alpha, without a slash, names {tmp_path / 'alpha'}; a "
                           "path with a slash is a folder from here")
    with pytest.raises(DatasetError, match="datasets here: alpha"):  # a path meant as one
        Dataset.open(tmp_path / "backup" / "alpha")


# a last line break passed "$" (a second side of the same end, a row broken in two; QA)
@pytest.mark.parametrize("kwargs", [dict(side="../x"), dict(label="good"), dict(split="dev"),
                                    dict(board=-1), dict(group="a b"), dict(side="left\n"),
                                    dict(group="ref\n"), dict(side="-x")])
def test_bad_take_values(tmp_path, kwargs):
    ds = Dataset.create(tmp_path / "bench")
    args = dict(board=1, side="left", label="normal", split="train", group="")
    args.update(kwargs)
    with pytest.raises(ParameterError) as e:
        ds.add_take(_tap(), sr=44100, **args)
    assert ds.takes == []
    if "side" in kwargs or "group" in kwargs:  # é is a letter: the rule is ASCII's (QA)
        assert "must be ASCII letters, digits, '-' or '_', beginning with a letter or digit" \
            in str(e.value) and "\n" not in str(e.value)


def test_a_session_stops_at_once_when_the_manifest_cannot_take_a_row(tmp_path):
    """A read-only manifest (here enforced by the kernel for root too) fails the writer at the
    start: found only after a recorded tap, it left that take's WAV without a row."""
    import os
    import subprocess
    import sys

    from .conftest import ROOT, obeying_file_modes, write_tone

    ds = Dataset.create(tmp_path / "bench")
    ds.add_take(_tap(), sr=44100, board=1, side="left", label="normal")
    manifest = tmp_path / "bench" / "manifest.csv"
    manifest.chmod(0o444)
    before = sorted(p.name for p in (tmp_path / "bench").rglob("*"))
    clip = write_tone(tmp_path / "c.wav", duration_s=3.0)
    run = subprocess.run([*obeying_file_modes(), sys.executable, "-m", "tapcheck", "import",
                          str(clip), "--dataset", str(tmp_path / "bench"), "--board", "1",
                          "--side", "left", "--label", "normal"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert (run.returncode, run.stdout) == (2, "")
    assert run.stderr == (f"tapcheck: error: {manifest}: cannot be written (Permission denied) "
                          "— choose a folder you may write to, or fix its permissions\n")
    assert sorted(p.name for p in (tmp_path / "bench").rglob("*")) == before


def test_a_take_whose_row_cannot_be_written_leaves_no_wav(tmp_path):
    """The disk filled between a take's WAV and its row: the WAV stayed without a row for good,
    and the next take was numbered after it (QA). Here a private tmpfs is filled to leave room
    for the WAV alone, and the manifest is rewritten (a hard-linked backup beside it)."""
    import os
    import subprocess
    import sys

    from .conftest import ROOT
    from .hostile_helpers import _private_mounts

    disk = tmp_path / "disk"
    disk.mkdir()
    script = """
import math, os, sys
from pathlib import Path
import numpy as np
from tapcheck.audio import encode_wav
from tapcheck.datasets import Dataset
from tapcheck.errors import StorageError
disk = Path(sys.argv[1])
y = np.sin(np.arange(3 * 44100) / 10).astype(np.float32) * 0.5
ds = Dataset.create(disk / "bench")
ds.add_take(y, sr=44100, board=1, side="left", label="normal")
os.link(disk / "bench" / "manifest.csv", disk / "manifest.bak")  # so the row is a rewrite
page = os.statvfs(disk).f_frsize
wav = math.ceil(len(encode_wav(y, sr=44100).getvalue()) / page)
(disk / "filler").write_bytes(bytes((os.statvfs(disk).f_bavail - wav) * page))
try:
    ds.add_take(y, sr=44100, board=1, side="left", label="normal")
except StorageError as e:
    print(e)
print(len(ds.takes), *sorted(p.name for p in (disk / "bench" / "board01" / "left").iterdir()))
"""
    run = subprocess.run([*_private_mounts(f"mount -t tmpfs -o size=1m tmpfs {disk}"),
                          sys.executable, "-c", script, str(disk)], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "manifest.csv: cannot be written (No space left on device)" in run.stdout, run.stdout
    assert run.stdout.splitlines()[-1] == "1 take001.wav"


def test_no_take_is_written_through_a_link_out_of_the_dataset(tmp_path):
    """A board folder linked elsewhere took the WAV outside, and the dataset then refused to be
    read ("take ... is a link to a file outside the dataset"); a link within the dataset is
    still followed, as reading takes follows it."""
    ds = Dataset.create(tmp_path / "bench")
    ds.add_take(_tap(), sr=44100, board=1, side="left", label="normal")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "bench" / "board02").symlink_to(outside)
    (tmp_path / "bench" / "board03").mkdir()
    (tmp_path / "bench" / "board03" / "right").symlink_to(outside)
    for board, side, link in ((2, "left", "board02"), (3, "right", "board03/right")):
        with pytest.raises(DatasetError) as found:
            ds.add_take(_tap(), sr=44100, board=board, side=side, label="normal")
        assert str(found.value) == (
            f"{tmp_path / 'bench' / link}: is a link to {outside}, outside the dataset; takes of "
            f"board {board} {side} would be written there and the dataset could no longer be "
            "read — replace the link by a folder (move what it holds into the dataset)")
    assert list(outside.iterdir()) == []
    assert len(Dataset.open(tmp_path / "bench")) == 1
    (tmp_path / "bench" / "board04").symlink_to("board01")
    take = ds.add_take(_tap(), sr=44100, board=4, side="left", label="normal")
    assert Dataset.open(tmp_path / "bench").path_of(take).is_file()


def test_a_take_linked_to_itself_is_one_line(tmp_path, run_cli):
    """A take's file that loops through symbolic links gave evaluate, info, doctor and train a
    traceback (RuntimeError from Path.resolve; QA); judge on the file itself was one line."""
    ds = Dataset.create(tmp_path / "bench")
    take = ds.add_take(_tap(), sr=44100, board=1, side="left", label="normal")
    path = tmp_path / "bench" / take.path
    path.unlink()
    path.symlink_to(path.name)
    code, out, err = run_cli("info", tmp_path / "bench")
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"tapcheck: error: {tmp_path / 'bench' / 'manifest.csv'}: {take.path} loops through "
        "symbolic links — fix the links (ls -l shows where each points), or delete the row")


def test_a_manifest_that_is_a_folder_is_named_as_one(run_cli):
    """`info` printed "cannot be read ([Errno 21] Is a directory: '…')" and advised a backup."""
    from tapcheck.paths import recordings_home

    folder = recordings_home() / "dirman" / "manifest.csv"
    folder.mkdir(parents=True)
    code, out, err = run_cli("info", "dirman")
    assert (code, out) == (2, "")
    assert err == (f"tapcheck: error: {folder}: is a folder, not the CSV "
                   "file a dataset's manifest is — move the folder aside and restore the "
                   "manifest from a backup\n")


def test_a_name_with_a_non_ascii_letter_is_told_which_letters_are_meant():
    """'ü' was refused with "use letters, digits…", which it is (trial 34)."""
    from tapcheck.dataset_folders import dataset_path

    with pytest.raises(ParameterError) as e:
        dataset_path("prüfung")
    assert e.value.fix.startswith("use ASCII letters, digits, '-' and '_'")


def test_a_hard_linked_backup_keeps_its_manifest(tmp_path):
    """`cp -al bench backup` links every file: a row appended in place to the manifest landed
    in the backup's manifest too (a take it does not hold). The manifest is rewritten instead,
    which parts the two; the backup's files are as they were."""
    import os
    import shutil

    ds = Dataset.create(tmp_path / "bench")
    ds.add_take(_tap(), sr=44100, board=3, side="left", label="normal", source="mic")
    shutil.copytree(tmp_path / "bench", tmp_path / "backup", copy_function=os.link)
    saved = (tmp_path / "backup" / "manifest.csv").read_bytes()
    ds.add_take(_tap(), sr=44100, board=3, side="left", label="normal", source="mic")
    ds.add_take(_tap(), sr=44100, board=3, side="left", label="normal", source="mic")
    assert (tmp_path / "backup" / "manifest.csv").read_bytes() == saved
    assert [t.take for t in Dataset.open(tmp_path / "backup").takes] == [1]
    assert [t.take for t in Dataset.open(tmp_path / "bench").takes] == [1, 2, 3]


def test_info_gives_a_side_of_two_labels_a_row_each(tmp_path, run_cli):
    """A side whose test takes are defective and whose training take, imported later, is normal
    was one row under the first take's label: `info` counted the normal take as a defective
    one (QA)."""
    ds = Dataset.create(tmp_path / "bench")
    for k in range(2):
        ds.add_take(_tap() * (1 - k / 4), sr=44100, board=7, side="left", label="defect",
                    group="defect-held-out", split="test")
    ds.add_take(_tap() * 0.3, sr=44100, board=7, side="left", label="normal")
    code, out, err = run_cli("info", tmp_path / "bench")
    assert code == 0, err
    rows = [line.split() for line in out.splitlines() if line.startswith("7 ")]
    assert rows == [["7", "left", "defect", "defect-held-out", "0", "2"],
                    ["7", "left", "normal", "1", "0"]]


@pytest.mark.parametrize("where", ["board09", "board09/left"])
def test_a_file_where_a_takes_folder_belongs_is_named(tmp_path, where):
    """`recordings/bf/board09` a file: "board09/left: cannot be written (Not a directory) —
    choose another path" named a path under it (QA)."""
    ds = Dataset.create(tmp_path / "bench")
    ds.add_take(_tap(), sr=44100, board=1, side="left", label="normal")
    (tmp_path / "bench" / where).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "bench" / where).write_text("notes")
    with pytest.raises(DatasetError) as e:
        ds.add_take(_tap(), sr=44100, board=9, side="left", label="normal")
    assert e.value.path == str(tmp_path / "bench" / where)
    assert e.value.problem == ("is a file where the folder of board 9"
                               f"{' left' if '/' in where else ''}'s takes belongs")
    assert (tmp_path / "bench" / where).read_text() == "notes"


def test_a_folder_removed_mid_session_is_not_made_again(tmp_path):
    """The dataset's folder deleted while `record --trigger` held it: the next take made the
    folder again, was numbered take001 in an empty manifest, and the summary said every take
    was saved (QA). The session stops instead, and makes nothing."""
    import shutil

    ds = Dataset.create(tmp_path / "rec")
    tap = np.zeros(4410, np.float32)
    with ds.locked():
        ds.add_take(tap, sr=44100, board=2, side="left", label="normal")
        shutil.rmtree(ds.root)
        with pytest.raises(DatasetError) as e:
            ds.add_take(tap, sr=44100, board=2, side="left", label="normal")
        assert str(e.value) == (f"{ds.root}: was deleted, moved or replaced while this session "
                                "wrote to it — keep a dataset's folder while a session writes "
                                "to it, and start the session again")
        assert not ds.root.exists()
    # a new session may make it again
    ds.add_take(tap, sr=44100, board=2, side="left", label="normal")
    assert [t.take for t in Dataset.open(ds.root).takes] == [1]


def test_a_manifest_this_user_may_not_read_is_not_sent_to_a_backup(tmp_path):
    """A manifest of mode 000 is whole: "restore it from a backup or rebuild it" sent a user to
    replace it (QA). As a subprocess in which the kernel enforces the mode, also for root."""
    from .conftest import error_under_file_modes

    path = _two_takes(tmp_path)
    path.chmod(0)
    said = error_under_file_modes(f"""
from tapcheck.datasets import Dataset
Dataset.open({str(tmp_path / 'bench')!r})""")
    assert said == (f"{path}: cannot be read (Permission denied) — check its permissions "
                    "(chmod a+r, or ask its owner)")
