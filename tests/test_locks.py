"""Lock files (tapcheck/locks.py) in folders a team shares: made as any file is, and taken
even where another user's lock file may not be written."""

from __future__ import annotations

import os
import stat

from tapcheck.locks import exclusive

from .conftest import error_under_file_modes


def test_a_lock_file_gets_the_usual_mode(tmp_path):
    """0666 less the umask: made 0644 whatever the umask, a lock one member left in a team's
    folder (umask 002) refused every other member's import as "cannot be written" (QA)."""
    umask = os.umask(0o002)
    try:
        with exclusive(tmp_path / ".lock", what=tmp_path, error=RuntimeError):
            assert stat.S_IMODE(os.stat(tmp_path / ".lock").st_mode) == 0o664
    finally:
        os.umask(umask)


def test_a_lock_file_this_user_may_not_write_is_still_taken(tmp_path):
    """A lock file left by another account (or an older tapcheck's 0644) that this one may
    read but not write: flock needs no write access, so the lock is taken, and held against
    others; it was "cannot be written (Permission denied)" of a folder the user may write."""
    lock = tmp_path / ".lock"
    lock.write_text("4242\n")
    lock.chmod(0o444)  # the kernel enforces it in the subprocess, for root too
    said = error_under_file_modes(f"""
import fcntl, os
from pathlib import Path
from tapcheck.locks import exclusive
folder = Path({str(tmp_path)!r})
with exclusive(folder / '.lock', what=folder, error=TapcheckError):
    other = os.open(folder / '.lock', os.O_RDONLY)  # another open file, as another process's
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print('held against others')
print('taken')""")
    assert said.splitlines() == ["held against others", "taken"], said


def test_a_lock_file_this_user_may_not_write_on_nfs_is_refused_as_before(tmp_path):
    """NFS locks only a file open for writing: flock of the read-only descriptor fails with
    EBADF (flock(2)), which came out as a bare "[Errno 9] Bad file descriptor" (review). NFS
    is not here to mount: its answer is given by the flock it would make."""
    lock = tmp_path / ".lock"
    lock.write_text("4242\n")
    lock.chmod(0o444)
    said = error_under_file_modes(f"""
import errno, fcntl, os
from pathlib import Path
from tapcheck.locks import exclusive
real = fcntl.flock
def nfs_flock(fd, how):
    if os.fstat(fd) and (fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE) == os.O_RDONLY:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))
    return real(fd, how)
fcntl.flock = nfs_flock
folder = Path({str(tmp_path)!r})
try:
    with exclusive(folder / '.lock', what=folder, error=TapcheckError):
        print('taken')
except TapcheckError as e:
    print(e)""")
    assert said == (f"{tmp_path}: cannot be locked: .lock beside it may not be written by this "
                    f"account (Permission denied) — its owner can let the group write it (chmod "
                    f"g+w {lock}); or, if no tapcheck is writing, remove it (tapcheck makes it "
                    "anew)")
