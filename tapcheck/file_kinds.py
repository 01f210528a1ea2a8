"""What a path is before tapcheck reads or writes it: a named pipe, a device, a file of someone
else's, a link leading out of its folder — told by asking, without opening what would block.

A fifo opened for reading blocks until someone writes to it and a device node reads forever
(``mkfifo x.wav`` hung ``judge``); an ``--out`` over a file tapcheck did not make replaced it.
Each is refused with the caller's error, naming the path.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import StorageError, TapcheckError


def special_kind(path: str | os.PathLike) -> str | None:
    """What a path is if it exists and is neither a regular file nor a folder, else None.

    Opening a named pipe for reading blocks until someone writes to it, and a device node reads
    forever: tapcheck looks before it opens (``mkfifo x.wav`` used to hang ``judge``).
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe (fifo)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device node"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def non_folder_kind(path: str | os.PathLike) -> str | None:
    """What stands at ``path`` where a folder should go, in words ("an audio file", "a file",
    "a named pipe (fifo)"), or None when nothing does or it is a folder (a link is followed).

    ``--dataset clips/good.wav`` and ``--explain-dir take.wav`` said "cannot be written (File
    exists)", which does not say that the path names a file. Audio is told by its first bytes
    (WAV, FLAC, OGG), read only from a regular file.
    """
    if not os.path.exists(path) or os.path.isdir(path):
        return None
    kind = special_kind(path)
    if kind:
        return kind
    head = sniff(path, size=12) or b""
    audio = (head[:4] == b"RIFF" and head[8:12] == b"WAVE") or head[:4] in (b"fLaC", b"OggS")
    return "an audio file" if audio else "a file"


def refuse_outside(path: str | os.PathLike, root: str | os.PathLike, error: type,
                   *, what: str) -> None:
    """Refuse to write ``path`` when a link on its way leads out of ``root`` (its folder, or one
    above it inside ``root``, planted as a link elsewhere): the station wrote its clips and
    pictures through such links, outside the inspection folder, and could no longer serve them.

    Raises
    ------
    error
        Naming the link and where it leads.
    """
    root_real = Path(root).resolve()
    folder = Path(path).parent
    if folder.resolve().is_relative_to(root_real):
        return
    link = next((f for f in (folder, *folder.parents) if f.is_symlink()), folder)
    raise error(f"is a link to {link.resolve()}, outside {root}; {what} are kept inside it",
                path=link, fix="remove the link (tapcheck makes the folder)")


def refuse_special(path: str | os.PathLike, error: type[TapcheckError], *, fix: str) -> None:
    """Raise ``error`` naming the path if it is a fifo, device or socket (see special_kind)."""
    kind = special_kind(path)
    if kind:
        raise error(f"is {kind}, not a file", path=path, fix=fix)


def refuse_read_only(path: str | os.PathLike, error: type[TapcheckError], *, what: str,
                     fix: str, disk_fix: str) -> None:
    """Raise ``error`` if ``path`` is a file protected against writing (no owner write bit, or
    not writable by this user). An atomic rewrite renames a new file over the old one, which
    the old file's permissions do not stop: the protection is honoured here, by asking.
    ``disk_fix`` is the fix when the file lies on a read-only file system, where no chmod
    helps (``train --out`` was told to "copy it … and name the copy"; QA)."""
    if os.path.isfile(path) and (not os.stat(path).st_mode & stat.S_IWUSR
                                 or not os.access(path, os.W_OK)):
        if not os.access(path, os.R_OK):  # a file of mode 000 was called "read-only" (QA)
            raise error("may not be read (permission denied)", path=path,
                        fix="check its permissions (ls -l): chmod u+rw if it is yours, or ask "
                            "its owner")
        if os.statvfs(path).f_flag & os.ST_RDONLY:  # no chmod helps on a read-only mount
            raise error(f"lies on a read-only file system, so {what} cannot replace it",
                        path=path, fix=disk_fix)
        raise error(f"is read-only, and {what} would replace it", path=path, fix=fix)


def sniff(path: str | os.PathLike, *, size: int = -1) -> bytes | None:
    """The first ``size`` bytes (all by default) of a regular file, or None for anything else
    or unreadable: how tapcheck tells its own files apart. A fifo is never opened (it would
    block); a link is followed (callers that refuse links check first)."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return None


def check_replaceable(path: str | os.PathLike, *, ours, what: str) -> None:
    """Before long work: ``path`` is nothing yet, or a file tapcheck wrote (``ours(path)``).

    A folder, a link, a fifo or device, or a file of anything else is refused with a
    :class:`StorageError`: an ``--out`` option never writes over what tapcheck did not make.
    """
    path = os.fspath(path)
    fix = "choose another --out"
    if os.path.isdir(path):
        raise StorageError(f"is a folder; --out names the {what} to write", path=path, fix=fix)
    refuse_special(path, StorageError, fix=fix)
    if os.path.islink(path):
        raise StorageError("is a symbolic link; tapcheck does not write through links",
                           path=path, fix=fix)
    if os.path.lexists(path) and not ours(path):
        raise StorageError(f"exists and is not a {what} tapcheck wrote; tapcheck overwrites only "
                           "its own files", path=path, fix=fix)


def check_stored_crcs(path: str | os.PathLike, error: type[TapcheckError], *, what: str,
                      fix: str) -> None:
    """Refuse a zip archive as torch.save writes it (every member stored, uncompressed) whose
    members fail their CRC-32: 4 kB of zeros inside a model file's weights loaded without a
    word, and ``enroll`` then rewrote it with fresh checksums (QA).

    Anything else is left to the reader to refuse or load: not a zip, or one cut short; one
    with compressed members (checking would inflate them: a 9 MB zip bomb took 1.8 s); one
    whose CRCs are all 0 (``torch.serialization.set_crc32_options(False)`` writes no CRC, and
    torch loads it). It costs a second read of the file, from the page cache: 33 ms for a
    100 MB arcface-resnet18 file, beside torch.load's 50 ms.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if (any(m.compress_type != zipfile.ZIP_STORED for m in members)
                    or not any(m.CRC for m in members)):
                return
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError):
        return  # cut short, or not a zip: the reader says what it is
    if bad is not None:
        raise error(f"is damaged: its part {bad} fails its checksum (the file changed on disk "
                    f"or in a copy after it was written), so this {what} cannot be trusted",
                    path=path, fix=fix)
