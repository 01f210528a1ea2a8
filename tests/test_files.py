"""Atomic writes: old file or new file, never half of one; the usual permissions; clear errors."""

import os
import stat
import subprocess
import sys

import pytest

from tapcheck.errors import StorageError
from tapcheck.files import atomic_write, check_writable

from .conftest import ROOT, as_another_user, error_under_file_modes, obeying_file_modes


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text("precious\n")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w") as f:
            f.write("half")
            raise RuntimeError("killed mid-write")
    assert path.read_text() == "precious\n"
    assert os.listdir(tmp_path) == ["manifest.csv"]


@pytest.mark.parametrize("name", ["板" * 80 + ".png", "x" * 251 + ".png"], ids=["cjk", "ascii"])
def test_a_long_name_that_fits_is_written(tmp_path, name):
    """A picture named after a clip of 244 bytes (80 CJK characters) fits the file system's 255,
    but its temporary file, 18 bytes longer, did not: the picture was lost to "File name too
    long", said of the hidden temporary file (QA)."""
    path = tmp_path / name
    assert len(os.fsencode(name)) <= 255
    with atomic_write(path, "w") as f:
        f.write("picture")
    assert path.read_text() == "picture" and os.listdir(tmp_path) == [name]


def test_stopped_writes_are_this_files_own_only(tmp_path):
    """`.m.pt.*.tmp` also matched a temporary file of m.pt.v2.pt, whose writer holds another
    lock, so a sweep could remove it mid-write; and a name holding `[` globbed nothing (review)."""
    from tapcheck.files import stopped_writes

    for name in (".m.pt.abcdefgh.tmp", ".m.pt.v2.pt.abcdefgh.tmp", ".m[1].pt.abc_efgh.tmp",
                 ".m.pt.partial.k2j4h6g8.tmp", ".m.pt.short.tmp"):
        (tmp_path / name).write_text("")
    assert [p.name for p in stopped_writes(tmp_path / "m.pt")] == [".m.pt.abcdefgh.tmp"]
    assert [p.name for p in stopped_writes(tmp_path / "m[1].pt")] == [".m[1].pt.abc_efgh.tmp"]
    assert [p.name for p in stopped_writes(tmp_path / "m.pt.partial")] == [
        ".m.pt.partial.k2j4h6g8.tmp"]


def test_new_files_get_the_usual_mode_and_replaced_ones_keep_theirs(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "take.wav") as f:
            f.write(b"x")
        assert _mode(tmp_path / "take.wav") == 0o644  # not mkstemp's private 0600
        (tmp_path / "take.wav").chmod(0o640)
        with atomic_write(tmp_path / "take.wav") as f:
            f.write(b"y")
        assert _mode(tmp_path / "take.wav") == 0o640
    finally:
        os.umask(umask)


def _replace_as(user: list[str], path) -> subprocess.CompletedProcess:
    code = (f"import warnings; warnings.simplefilter('always')\n"
            f"from tapcheck.files import atomic_write\n"
            f"with atomic_write({str(path)!r}) as f:\n    f.write(b'new')")
    return subprocess.run([*user, sys.executable, "-c", code], capture_output=True, text=True)


def test_a_replaced_file_keeps_its_group_for_the_next_user(tmp_path):
    """A model file a team shares (root:plant, 0660) that one member enrolled into became
    op1:op1, and no other station could read it (QA). A member keeps its group (its owner is
    the writer: only root may give a file away); root keeps both; one who is not a member is
    told the group changed."""
    plant, op1 = 12345, 54321
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    model = folder / "m.pt"
    model.write_bytes(b"old")
    os.chown(model, 0, plant)
    model.chmod(0o660)
    done = _replace_as(as_another_user(op1, groups=(plant,)), model)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    st = model.stat()
    assert (st.st_uid, st.st_gid, _mode(model), model.read_bytes()) == (op1, plant, 0o660,
                                                                         b"new")
    os.chown(model, 4242, plant)
    with atomic_write(model) as f:  # root
        f.write(b"root's")
    assert (model.stat().st_uid, model.stat().st_gid) == (4242, plant)
    os.chown(model, 0, plant)
    done = _replace_as(as_another_user(op1), model)  # not a member of plant
    assert done.returncode == 0 and model.stat().st_gid == op1
    assert (f"{model}: written with group {op1}, where it was {plant} (this account may not "
            "give a file that group: not one of its members, or root on a network share), so "
            f"{plant}'s other users may no longer use it") in done.stderr
    # a link is replaced by the file, not given its target's owner: root gave files away so
    target = tmp_path / "theirs.pt"
    target.write_bytes(b"x")
    os.chown(target, 4242, plant)
    link = folder / "link.pt"
    link.symlink_to(target)
    with atomic_write(link) as f:
        f.write(b"y")
    assert (link.lstat().st_uid, link.lstat().st_gid) == (0, 0) and not link.is_symlink()


@pytest.mark.parametrize("create", [False, True])
@pytest.mark.parametrize("below", ["", "sub"], ids=["the-folder", "a-parent"])
def test_a_link_to_nothing_is_named_as_such_and_nothing_is_created(tmp_path, create, below):
    """`compare --out` to a dangling link trained, then failed with "File exists"."""
    link = tmp_path / "reports"
    link.symlink_to(tmp_path / "gone")
    with pytest.raises(StorageError, match=rf"{link}: is a symbolic link to {tmp_path / 'gone'}, "
                                           "which does not exist — create the folder"):
        check_writable(link / below if below else link, create=create)
    assert sorted(os.listdir(tmp_path)) == ["reports"]


def test_a_write_through_a_link_to_nothing_names_the_link(tmp_path):
    """`synth --dataset x` under a `recordings` link to nothing said "recordings/x: cannot be
    written (File exists) — a file stands where a folder should be"."""
    link = tmp_path / "recordings"
    link.symlink_to(tmp_path / "gone")
    with pytest.raises(StorageError, match=rf"^{link}: is a symbolic link to {tmp_path / 'gone'}"):
        with atomic_write(link / "x" / "take.wav") as f:
            f.write(b"x")
    assert sorted(os.listdir(tmp_path)) == ["recordings"]


def test_check_writable_does_not_create_what_it_only_checks(tmp_path):
    target = tmp_path / "a" / "b"
    assert check_writable(target, create=False) == target
    assert not (tmp_path / "a").exists()
    assert check_writable(target).is_dir()
    assert os.listdir(target) == []  # the probe leaves nothing behind


def test_a_file_where_a_folder_should_be(tmp_path):
    (tmp_path / "models").write_text("not a folder")
    with pytest.raises(StorageError, match="a file stands where a folder should be"):
        with atomic_write(tmp_path / "models" / "m.pt") as f:
            f.write(b"x")


def test_read_only_folder_is_a_storage_error(tmp_path):
    """As a subprocess in which the kernel enforces the folder's mode, also for root."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    said = error_under_file_modes(f"""
from tapcheck.files import atomic_write
with atomic_write({str(folder / 'm.pt')!r}) as f:
    f.write(b'x')""")
    assert said == (f"{folder}: cannot be written (Permission denied) — choose a folder you may "
                    "write to, or fix its permissions")
    assert os.listdir(folder) == []


def test_a_folder_that_may_not_be_entered_nor_written_is_named_as_not_writable(tmp_path):
    """Checked for writing, such a folder was "cannot be entered …, so tmp1sntldwe in it
    cannot be reached": the random file the check tried there (review)."""
    folder = tmp_path / "theirs"
    folder.mkdir()
    folder.chmod(0o600)
    try:
        said = error_under_file_modes(f"""
from tapcheck.files import check_writable
check_writable({str(folder)!r})""")
    finally:
        folder.chmod(0o755)
    assert said == (f"{folder}: cannot be written (Permission denied) — choose a folder you may "
                    "write to, or fix its permissions")
    assert os.listdir(folder) == []
    # a folder further up that may not be entered is named as such, not a folder below it
    (folder / "sub").mkdir()
    folder.chmod(0)
    try:
        said = error_under_file_modes(f"""
from tapcheck.files import atomic_write
with atomic_write({str(folder / 'sub' / 'x.txt')!r}) as f:
    f.write(b'x')""")
    finally:
        folder.chmod(0o755)
    assert said.startswith(f"{folder}: cannot be entered (permission denied), so sub in it "
                           "cannot be reached"), said


def test_a_file_that_may_not_be_read_is_not_called_read_only(tmp_path):
    """A model file of mode 000 was "read-only, and enroll would replace it — make it
    writable" (QA); as a subprocess in which the kernel enforces the mode, also for root."""
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    model.chmod(0)
    said = error_under_file_modes(f"""
from tapcheck.file_kinds import refuse_read_only
refuse_read_only({str(model)!r}, ModelFileError, what='enroll', fix='f',
                 disk_fix='d')""",
                                  error="ModelFileError")
    assert said == (f"{model}: may not be read (permission denied) — check its permissions "
                    "(ls -l): chmod u+rw if it is yours, or ask its owner")


@pytest.mark.parametrize("command", [["synth", "--takes", "1", "--dataset"],
                                     ["import", "x.wav", "--board", "1", "--side", "left",
                                      "--label", "normal", "--dataset"]])
def test_a_folder_that_cannot_be_made_is_one_line(run_cli, command, tmp_path):
    """/proc refuses new folders with ENOENT, which once passed through as a traceback; then
    synth and import named it otherwise than compare --out (QA): now all alike."""
    import errno

    from tapcheck.files import storage_error

    with pytest.raises(StorageError, match="takes no new files"):
        check_writable("/proc/tapcheck-x")
    code, out, err = run_cli(*command, "/proc/tapcheck-x")
    assert code == 2 and err == ("tapcheck: error: /proc: takes no new files (a virtual file "
                                 "system, such as /proc?) — choose a folder on a disk, e.g. "
                                 "under your home folder\n")
    # a folder on the way removed meanwhile, on a disk that takes files: not a virtual one
    gone = tmp_path / "gone" / "x.wav"
    assert str(storage_error(OSError(errno.ENOENT, "No such file or directory"), gone)) == (
        f"{gone}: cannot be written (No such file or directory) — its folder cannot be made "
        "there; choose another path")
    assert list(tmp_path.iterdir()) == []  # told without a file tried there


def test_an_output_folder_under_proc_is_named_as_a_folder_that_takes_no_files():
    """/proc exists but takes no files: the error said "/proc: cannot be written (No such file or
    directory) — its folder cannot be made there", the wrong reason about an existing folder."""
    with pytest.raises(StorageError) as e:
        check_writable("/proc/x", create=False)
    assert str(e.value) == ("/proc: takes no new files (a virtual file system, such as /proc?) — "
                            "choose a folder on a disk, e.g. under your home folder")


def test_running_out_of_file_descriptors_is_a_storage_error(tmp_path):
    """A station held open by a thousand slow clients hit EMFILE saving a tap's clip: a raw
    OSError killed its listener thread while the page went on answering."""
    import subprocess
    import sys

    script = (
        "import resource, sys\n"
        "from tapcheck.errors import StorageError\n"
        "from tapcheck.files import atomic_write\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))\n"
        "held = []\n"
        "try:\n"
        "    while True: held.append(open(sys.argv[1] + '/f%d' % len(held), 'w'))\n"
        "except OSError: pass\n"
        "try:\n"
        "    with atomic_write(sys.argv[1] + '/clip.wav') as f: f.write(b'x')\n"
        "except StorageError as e: print(e)\n")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    assert result.stdout == (f"{tmp_path}: cannot be written (Too many open files) — this "
                             "process has too many files open; stop what holds them, then try "
                             "again\n"), result.stderr


def test_a_folder_that_may_not_be_entered_is_named_in_one_line(tiny_model, tiny_dataset,
                                                                tmp_path):
    """A folder another account made (umask 077) or that lost its x bit: pathlib's exists()
    raised PermissionError in every command, a traceback (data QA). Now one line names the
    folder; judge still judges the other clips; datasets lists the others and warns of it."""
    import shutil

    from .hostile_helpers import _tapcheck

    prefix = obeying_file_modes()
    tiny_dataset = tiny_dataset.root
    clip = sorted(tiny_dataset.glob("board11/left/*.wav"))[0]
    locked = tmp_path / "locked"
    locked.mkdir()
    shutil.copy(clip, locked / "tap.wav")
    shutil.copy(tiny_model, locked / "m.pt")
    recordings = tmp_path / "recordings"
    shutil.copytree(tiny_dataset, recordings / "ds")
    shutil.copytree(tiny_dataset, recordings / "theirs")
    fix = ("give your account access to it (chmod u+rx, or ask its owner), or copy what you "
           "need to a folder of yours")
    locked.chmod(0o644)  # may be listed, not entered
    (recordings / "theirs").chmod(0o600)
    (recordings / "ds" / "board01").chmod(0)
    try:
        run = _tapcheck("judge", "--model", tiny_model, clip, locked / "tap.wav", prefix=prefix)
        assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
        assert len(run.stdout.splitlines()) == 1 and run.stdout.rstrip().endswith(str(clip))
        assert (f"tapcheck: error: {locked}: cannot be entered (permission denied), so tap.wav "
                f"in it cannot be reached — {fix}") in run.stderr.splitlines()
        run = _tapcheck("judge", "--model", locked / "m.pt", clip, prefix=prefix)
        assert run.returncode == 2 and run.stderr.splitlines() == [
            f"tapcheck: error: {locked}: cannot be entered (permission denied), so m.pt in it "
            f"cannot be reached — {fix}"], run.stderr
        env = {"TAPCHECK_RECORDINGS": str(recordings), "TAPCHECK_CACHE": str(tmp_path / "c")}
        run = _tapcheck("info", "ds", prefix=prefix, env=env)
        assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
        assert run.stderr.splitlines()[-1].startswith(
            f"tapcheck: error: {recordings / 'ds' / 'board01'}: cannot be entered (permission "
            "denied), so "), run.stderr
        (recordings / "lost+found").mkdir(mode=0o700)  # a file system's own: not a dataset
        run = _tapcheck("datasets", prefix=prefix, env=env)
        assert run.returncode == 0 and run.stderr.splitlines() == [
            f"tapcheck: warning: {recordings / 'theirs'}: cannot be entered (permission "
            "denied), so whether it holds a dataset is not known — give your account access to "
            "it (chmod u+rx, or ask its owner)"], run.stderr
        assert run.stdout.splitlines()[1].startswith("ds ")
    finally:
        locked.chmod(0o755)
        (recordings / "theirs").chmod(0o755)
        (recordings / "ds" / "board01").chmod(0o755)
