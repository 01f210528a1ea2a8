"""Atomic writes: a file is either its old self or wholly new, never half written.

Every file tapcheck writes that a user would miss — takes, manifests, model files, reports — goes
through :func:`atomic_write`: the bytes go to a temporary file in the same folder (so the final
rename never crosses a file system), are flushed to disk, and the temporary file is renamed over
the target; then the folder itself is flushed, so the rename survives a power cut too. A crash or
SIGKILL at any moment leaves the previous file intact and at worst a stray ``.*.tmp`` file, which
readers ignore.

A folder tapcheck may not write to, or a full disk, is a :class:`~tapcheck.errors.StorageError`
(one line, exit status 2), not a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import IO, Iterator

from .errors import StorageError, TapcheckError

# errno values that mean "this place cannot take the file", which the user can fix
_FIXES = {
    errno.EACCES: "choose a folder you may write to, or fix its permissions",
    errno.EPERM: "choose a folder you may write to, or fix its permissions",
    errno.EROFS: "the disk is read-only; choose a folder on another disk",
    errno.ENOSPC: "the disk is full; free some space and try again",
    errno.EDQUOT: "your disk quota is used up; free some space and try again",
    errno.EFBIG: "the file is too large for this file system; choose another disk",
    errno.ENOTDIR: "a file stands where a folder should be; choose another path",
    errno.EEXIST: "a file stands where a folder should be; choose another path",
    # a folder on the way cannot be made there (under /proc, or removed meanwhile)
    errno.ENOENT: "its folder cannot be made there; choose another path",
    # a station held open by a thousand half-sent requests ran out of descriptors mid-tap
    errno.EMFILE: "this process has too many files open; stop what holds them, then try again",
    errno.ENFILE: "the system has too many files open; close some programs, then try again",
}


def write_fix(errno_value: int | None) -> str:
    """What to do when a write failed with ``errno_value`` (a full or read-only disk, …)."""
    return _FIXES.get(errno_value, "check where it is written")


NAME_MAX = 255  # bytes in one folder or file name: Linux's ext4, XFS, Btrfs, tmpfs alike
# errno values that mean no file can have this path at all, whether read or written: what is
# wrong, and the fix. Path.exists() raises the first (a 300-character name gave a traceback).
_PATH_PROBLEMS = {
    errno.ENAMETOOLONG: ("has a name too long for the file system",
                         "shorten the name (at most 255 bytes per folder or file name)"),
    errno.ELOOP: ("loops through symbolic links",
                  "fix the links (ls -l shows where each points)"),
}


_TMP = ".tmp"  # atomic_write's temporary files: ".<name>.<random>.tmp" beside the file


def stopped_writes(path: str | os.PathLike) -> list[Path]:
    """The temporary files :func:`atomic_write` left beside ``path`` when it was stopped:
    ``.<name>.`` and mkstemp's 8 characters only (``.m.pt.*.tmp`` also matched a temporary file
    of ``m.pt.v2.pt``, another file's writer; and a name holding ``[`` globbed nothing;
    review)."""
    path = Path(path)
    mine = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}{re.escape(_TMP)}")
    return sorted(p for p in path.parent.glob(f".{glob.escape(path.name)}.*{_TMP}")
                  if mine.fullmatch(p.name))


def remove_stopped_writes(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files :func:`atomic_write` left in a dataset's ``folder`` when a
    run was killed mid-write (SIGKILL, a power cut), with one warning; returns them.

    Call it only holding the writer's lock of ``folder`` (a dataset's): then no write is under
    way there. A killed ``import`` left ``.take005.wav.wnkdplu5.tmp`` (a whole take's size)
    that later runs kept; only ``doctor`` named it. Only takes' and the manifest's temporary
    files, at the folder's root and in its ``boardNN/<side>/`` folders; links are not followed.
    """
    import re
    import warnings

    from .errors import TapcheckWarning

    # what a dataset's writers write: takes and the manifest, at the root and in board/side
    # folders; mkstemp's 8 random characters. A user's ".notes.20261205.tmp" is not one
    name = re.compile(r"^\.(take\d+\.wav|manifest\.csv)\.[a-z0-9_]{8}" + re.escape(_TMP) + "$")
    root = Path(folder)
    found = [p for pattern in (".*" + _TMP, "board*/*/.*" + _TMP) for p in root.glob(pattern)
             if name.match(p.name) and not p.is_symlink() and not p.parent.is_symlink()
             and not p.parent.parent.is_symlink()]
    removed = []
    for path in sorted(found):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    if removed:
        warnings.warn(f"{folder}: removed {len(removed)} unfinished temporary file(s) a stopped "
                      f"run left (no take is in them), e.g. {os.path.relpath(removed[0], folder)}",
                      TapcheckWarning, stacklevel=2)
    return removed


NAME_MAX = 255  # bytes in a file's name on Linux's file systems (ext4, xfs, btrfs, tmpfs)


def _tmp_prefix(name: str) -> str:
    """``.<name>.`` for :func:`atomic_write`'s temporary file, ``name`` cut short (at a whole
    character) where the temporary name would pass :data:`NAME_MAX` though ``name`` does not:
    a picture named after a 244-byte clip name was lost to "File name too long", said of the
    hidden temporary file (QA). Such a write's leftovers are not among :func:`stopped_writes`."""
    room = NAME_MAX - len(".." + "x" * 8 + _TMP)  # the dots, mkstemp's 8 characters, suffix
    raw = os.fsencode(name)
    if len(raw) <= room:
        return f".{name}."
    return f".{raw[:room].decode('utf-8', 'ignore')}."  # a character cut in two is dropped


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *,
                 encoding: str | None = None, newline: str | None = None,
                 errors: str | None = None) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    If the block raises, the temporary file is removed and ``path`` is untouched. The new file
    gets the old file's permissions, or the usual ones (0666 minus the umask) if it is new, and
    the old file's group (and owner, for root) where this user may give it (a warning where not).

    Raises
    ------
    StorageError
        The folder cannot be created or written to, or the disk is full or read-only.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_tmp_prefix(path.name), suffix=_TMP)
    except OSError as e:
        raise storage_error(e, path.parent) from None
    try:
        _keep_group(fd, path)  # before the mode: a chown clears a set-group-ID bit
        # mkstemp makes the file private (0600); a take or model should read like any other file
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, mode, encoding=encoding, newline=newline, errors=errors) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        # numpy's np.save to a full disk says only "24000 requested and 11232 written", with no
        # errno: a full feature cache gave train, evaluate and compare a traceback (QA). Asked
        # before the partial file goes, which frees its blocks
        if isinstance(e, OSError) and e.errno is None and os.statvfs(path.parent).f_bavail == 0:
            e = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in _FIXES:
            raise storage_error(e, path) from None
        raise
    _fsync_folder(path.parent)


def check_writable(folder: str | os.PathLike, *, create: bool = True) -> Path:
    """Make sure a new file can be written in ``folder``, before long work rather than after.

    Parameters
    ----------
    folder : str or PathLike
    create : bool
        Create the folder if needed; otherwise a missing folder is checked by trying its nearest
        existing parent (where it would be created), and nothing is left behind.

    Raises
    ------
    StorageError
        It cannot: no permission, read-only or full disk.
    """
    folder = Path(folder)
    check_path(folder, StorageError)  # a name no folder can have: now, not when written
    # a link to nothing passed as a missing folder, then `compare --out` failed after the
    # training with "cannot be written (File exists) — a file stands where a folder should be"
    link = dangling_link(folder)
    if link is not None:
        raise _dangling_error(link)
    target = folder
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        else:
            while not target.exists() and target != target.parent:
                target = target.parent
        # a real file, not os.access: root passes os.access on a read-only file system too
        try:
            with tempfile.TemporaryFile(dir=target):
                pass
        except OSError as e:  # the folder is what was checked, not the random file tried in
            # it: a folder that may be neither entered nor written was "cannot be entered, so
            # tmp1sntldwe in it cannot be reached" (review)
            e.filename = None
            raise
    except OSError as e:
        raise storage_error(e, target) from None
    return folder


def dangling_link(path: str | os.PathLike) -> Path | None:
    """``path`` or the nearest of its parents that is a symbolic link to nothing, or None."""
    path = Path(path)
    for link in (path, *path.parents):
        if link.is_symlink() and not link.exists():
            return link
    return None


def _dangling_error(link: Path) -> StorageError:
    return StorageError(f"is a symbolic link to {os.readlink(link)}, which does not exist",
                        path=link, fix="create the folder it points to, or choose another path")


def storage_error(e: OSError, path: Path) -> StorageError | OSError:
    """The one-line error for an OSError met while writing ``path`` (other errors unchanged)."""
    found = path_error(e, error=StorageError)
    if found is not None:
        return found
    link = dangling_link(path) if e.errno in (errno.EEXIST, errno.ENOTDIR) else None
    if link is not None:  # mkdir through a link to nothing says "File exists"
        return _dangling_error(link)
    if e.errno == errno.ENOENT:
        # /proc: a folder on the way is there but takes no files; "No such file or
        # directory" read as the wrong path. Said alike whoever met it (synth said the one,
        # compare --out the other)
        there = next((p for p in (path, *path.parents) if p.exists()), None)
        if there is not None and there.is_dir() and _virtual(there):
            return StorageError("takes no new files (a virtual file system, such as /proc?)",
                                path=there, fix="choose a folder on a disk, e.g. under your "
                                                "home folder")
    if e.errno not in _FIXES:
        return e
    return StorageError(f"cannot be written ({e.strerror})", path=path, fix=_FIXES[e.errno])


def _virtual(folder: Path) -> bool:
    """Whether ``folder`` lies on a file system of no storage (/proc, /sys: no blocks), asked
    without writing there: another folder that gave ENOENT lost a folder on the way meanwhile.
    (A file tried in it was a write in a folder the user did not name; review.)"""
    try:
        return os.statvfs(folder).f_blocks == 0
    except OSError:
        return False


def path_error(e: OSError, path: str | os.PathLike | None = None, *,
               error: type[TapcheckError] = TapcheckError) -> TapcheckError | None:
    """The one-line error for a path no file can have, or None if ``e`` is another error.

    A name past the file system's limit (ENAMETOOLONG) or a loop of symbolic links (ELOOP) is
    the path's fault wherever it is met, so the error names the path the system named
    (``e.filename``: the too-long name itself, not the folder a lock or temporary file goes in),
    else ``path``. An ELOOP from opening a symbolic link with O_NOFOLLOW (a lock file or
    manifest that is a link) is not a loop: None, for the caller to handle. A permission error
    met because a folder on the way may not be entered names that folder.

    Parameters
    ----------
    e : OSError
    path : str or PathLike, optional
        The path being used, named when ``e`` names none.
    error : type
        The TapcheckError subclass to raise (AudioError for a clip, so that ``judge`` lists it
        and judges the other clips).
    """
    where = e.filename if e.filename is not None else path
    if e.errno in (errno.EACCES, errno.EPERM) and where is not None:
        # a folder on the way that may not be entered (made by another account, umask 077):
        # pathlib's exists() and is_dir() raise there, and every command ended in a traceback
        # (data QA). A file or folder that may not be read or written is the caller's to say
        folder = denied_folder(where)
        if folder is None:
            return None
        inside = Path(where).relative_to(folder) if folder != Path(".") else Path(where)
        return error(f"cannot be entered (permission denied), so {inside} in it cannot be "
                     "reached", path=folder,
                     fix="give your account access to it (chmod u+rx, or ask its owner), or "
                         "copy what you need to a folder of yours")
    if e.errno not in _PATH_PROBLEMS:
        return None
    if e.errno == errno.ELOOP and where is not None and os.path.islink(where):
        try:
            os.stat(where)
        except OSError as followed:
            if followed.errno != errno.ELOOP:
                return None
        else:
            return None  # the link itself leads somewhere: O_NOFOLLOW refused it, not a loop
    problem, fix = _PATH_PROBLEMS[e.errno]
    return error(f"{problem} ({e.strerror})", path=where, fix=fix)


def denied_folder(path: str | os.PathLike) -> Path | None:
    """The first folder on ``path`` that this process may not enter, or None (each part of the
    path looked up in turn, from the first; ``.`` if the working folder is the one)."""
    parts = Path(path).parts
    for i in range(len(parts)):
        try:
            os.lstat(Path(*parts[:i + 1]))
        except PermissionError:
            return Path(*parts[:i]) if i else Path(".")
        except OSError:
            return None
    return None


def check_path(path: str | os.PathLike, error: type[TapcheckError] = TapcheckError) -> None:
    """Raise ``error`` if no file can have ``path``: a name too long, a loop of symbolic links,
    a folder on the way that may not be entered.

    Before ``Path.exists()``, which raises OSError for the first and answers False for the
    second (a link loop passed for a missing file).
    """
    for part in Path(path).parts:
        # checked by length too: under a folder that does not exist yet (`compare --out
        # reports/<300 characters>`) the system answers "not found" first, and the name failed
        # only when written, after the work
        if len(os.fsencode(part)) > NAME_MAX:
            problem, fix = _PATH_PROBLEMS[errno.ENAMETOOLONG]
            raise error(f"{problem} ({os.strerror(errno.ENAMETOOLONG)})", path=path, fix=fix)
    try:
        os.stat(path)
    except OSError as e:
        found = path_error(e, path, error=error)
        if found is not None:
            raise found from None


def _keep_group(fd: int, path: Path) -> None:
    """Give the file open at ``fd`` the owner and group of the ``path`` it will replace: as
    root both, else the group where the user is one of its members. A model file shared by a
    team (``root:plant``, 0660) that one member enrolled into became ``op1:op1``, and no other
    station could read it (QA). Warns when the group cannot be kept and gave access."""
    try:
        old = path.lstat()
    except OSError:
        return  # a new file: the folder's group, as for any new file
    if stat.S_ISLNK(old.st_mode):  # the link is replaced, not its target: whose it was is
        return  # not the new file's to take (root would give it away)
    for uid, gid in ((old.st_uid, old.st_gid), (-1, old.st_gid)):
        try:
            os.fchown(fd, uid, gid)
            return
        except OSError:
            continue
    now = os.fstat(fd).st_gid
    if now != old.st_gid and old.st_mode & 0o070:
        import warnings

        from .errors import TapcheckWarning

        warnings.warn(f"{path}: written with group {_group_name(now)}, where it was "
                      f"{_group_name(old.st_gid)} (this account may not give a file that "
                      "group: not one of its members, or root on a network share), so "
                      f"{_group_name(old.st_gid)}'s other users may no longer use it — ask its "
                      f"owner or an administrator to run chgrp {_group_name(old.st_gid)} {path}",
                      TapcheckWarning, stacklevel=2)


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the rename itself is still atomic
    finally:
        os.close(fd)
