"""Writers' locks: one writer per dataset, model file or inspection log, the others told who.

A writer holds an exclusive ``fcntl.flock`` on a small lock file for as long as it writes (a whole
``import``, ``record`` or ``synth`` session, a whole ``train`` run, a whole ``listen``) and writes
its PID into it. A second writer does not wait and does not guess: it gets a one-line error
"in use by PID N", so two runs never interleave takes or overwrite each other's progress, and a
run that is merely busy is never mistaken for one that was interrupted.

The kernel drops a flock when its process dies (even by SIGKILL), so a stale lock file never
blocks anyone: the PID in it is only read to name the holder. Within one process the lock is
re-entrant (a session holding a dataset's lock adds takes that take it again).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from pathlib import Path
from typing import Iterator, NoReturn

from .errors import TapcheckError
from .files import storage_error
from .interrupts import deferred

_HELD: dict[str, list] = {}  # lock path -> [fd, depth]: re-entrance within this process


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of a file tapcheck writes: ``<path>.lock`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


def holding(lock_path: str | os.PathLike) -> bool:
    """Whether this process holds the lock ``lock_path`` already (re-entrance)."""
    return os.path.abspath(lock_path) in _HELD


def moved_away(lock_path: str | os.PathLike) -> bool:
    """Whether this process holds ``lock_path`` but the path no longer names the file it
    holds (deleted with its folder, or replaced): what the lock guarded went with it."""
    held = _HELD.get(os.path.abspath(lock_path))
    if held is None:
        return False
    mine = os.fstat(held[0])
    try:
        now = os.stat(lock_path)
    except OSError:
        return True
    return (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino)


def holder(lock_path: str | os.PathLike) -> int | None:
    """The PID written in a lock file, if any (the holder, when the lock is held)."""
    try:
        text = Path(lock_path).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def exclusive(lock_path: str | os.PathLike, *, what: Path | str, error: type[TapcheckError],
              remove: bool = False) -> Iterator[None]:
    """Hold the exclusive lock ``lock_path`` for the block, or raise ``error`` at once.

    Parameters
    ----------
    lock_path : path
        The lock file (created if missing).
    what : path or str
        Named in the error: the dataset, model file or log being written.
    error : TapcheckError subclass
        Raised when another process holds the lock: "in use by PID N".
    remove : bool
        Delete the lock file afterwards (beside a model file, so models/ stays tidy).
    """
    key = os.path.abspath(lock_path)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    fd = None
    try:
        # Ctrl-C or kill between creating the lock file and holding it left the file behind
        # (a SIGTERM sent the moment it appeared, tests/test_enroll.py): acted on once it is
        # held, inside this try, so the finally removes it
        with deferred():
            fd = _acquire(Path(key), what=what, error=error)
            _HELD[key] = [fd, 1]
        yield
    finally:
        if fd is not None:
            del _HELD[key]
            if remove:
                # unlink while still holding it: whoever opens the path next makes a new file,
                # and _acquire's inode check sends anyone who opened the old one round again
                with contextlib.suppress(OSError):
                    os.unlink(key)
            os.close(fd)  # releases the flock


def writer(lock_path: str | os.PathLike) -> int | None:
    """The PID of another process writing under ``lock_path`` now (holding its flock; 0 when
    the kernel cannot name it: a process of another PID namespace), else None; None too where
    the kernel does not list its locks (/proc/locks: Linux). Read, not taken: a reader that took
    the lock even for a moment could refuse a writer starting then.

    A lock is matched by its file's inode and either its device or the PID the holder wrote in
    the file: /proc/locks gives the superblock's device, which ``stat`` does not on btrfs
    subvolumes or overlayfs (review)."""
    try:
        st = os.stat(lock_path, follow_symlinks=False)
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            table = f.read()
    except OSError:
        return None
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
    named = holder(lock_path)
    for line in table.splitlines():
        fields = line.split()  # 1: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF ("->" waits)
        if len(fields) < 6 or fields[1] != "FLOCK":
            continue
        dev, _, inode = fields[5].rpartition(":")
        try:
            pid = max(int(fields[4]), 0)
        except ValueError:
            continue
        if inode != str(st.st_ino) or pid == os.getpid():
            continue
        if dev == device or (pid and pid == named):
            return pid
    return None


def _acquire(path: Path, *, what: Path | str, error: type[TapcheckError]) -> int:
    while True:
        try:
            # O_NOFOLLOW: a symlink planted as the lock file must not make us truncate its target
            # 0666 less the umask, as any file: a lock made 0644 in a team's folder (umask 002)
            # refused every other member's import or enroll as "cannot be written" (QA)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
                         | os.O_NONBLOCK, 0o666)  # O_NONBLOCK: a fifo planted here cannot hang us
        except OSError as e:
            # a lock file another user left that this one may not write (an older tapcheck's
            # 0644): flock needs only a descriptor, and only its PID goes unwritten
            denied = e if isinstance(e, PermissionError) else None
            fd = _read_only(path) if denied else None
            if fd is None:
                _refuse_lock_file(e, path, what=what, error=error)
        else:
            denied = None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise error(f"cannot be locked: {path.name} beside it is not a lock file", path=what,
                        fix=f"remove {path} (tapcheck makes it anew)")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                if denied is not None:  # NFS locks only what is open for writing (EBADF):
                    _refuse_lock_file(denied, path, what=what, error=error)  # as it was
                raise storage_error(e, path) from None
            # the kernel's word where it has one: a holder that took a lock file it may not
            # write (see above) left the PID of the last one that could in it
            pid = writer(path) if os.path.exists("/proc/locks") else holder(path)
            by = f"PID {pid}" if pid else "another process"
            raise error(f"in use by {by} (another tapcheck is writing it)", path=what,
                        fix="wait for it to finish, or stop it, then try again") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the holder removed the file after we opened it: lock the new one
            os.close(fd)
            continue
        foreign = _not_a_lock(fd)
        if foreign:  # a user's file of that name: truncated, then deleted by remove=True
            os.close(fd)
            raise error(f"cannot be locked: {path.name} beside it is not a lock file "
                        f"({foreign})", path=what,
                        fix=f"move {path} aside (tapcheck writes there only its lock)")
        with contextlib.suppress(OSError):  # only names the holder; a full disk must not stop us
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        return fd


def _refuse_lock_file(e: OSError, path: Path, *, what: Path | str,
                      error: type[TapcheckError]) -> NoReturn:
    """The one-line error for a lock file that could not be opened."""
    if isinstance(e, PermissionError) and path.is_file():
        # the lock file another account left, not the folder: "cannot be written" of a folder
        # the user may write sent them to the wrong one (QA)
        raise error(f"cannot be locked: {path.name} beside it may not be written by this "
                    f"account ({e.strerror})", path=what,
                    fix=f"its owner can let the group write it (chmod g+w {path}); or, if no "
                        "tapcheck is writing, remove it (tapcheck makes it anew)") from None
    found = storage_error(e, Path(what))  # the folder or file the user named
    if isinstance(found, TapcheckError):
        raise found from None
    # a folder, a link or a fifo where the lock file goes: nothing to take a lock on
    raise error(f"cannot be locked: {path.name} beside it is not a lock file "
                f"({e.strerror})", path=what,
                fix=f"remove {path} (tapcheck makes it anew)") from None


def _read_only(path: Path) -> int | None:
    """A read-only descriptor of an existing lock file, or None where there is none to read."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None


def _not_a_lock(fd: int) -> str | None:
    """Why the file open at ``fd`` is not a lock file tapcheck left (empty, or a PID), else
    None. (A second name is no sign: a hard-linked backup of a dataset links its lock too.)"""
    with contextlib.suppress(OSError):
        head = os.pread(fd, 64, 0)
        if head.strip() and not head.strip().isdigit():
            return "it holds other data"
    return None
