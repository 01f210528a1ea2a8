"""What an audio file's container promises, checked against what the file holds.

libsndfile reads what is there of a file cut short (a copy or recording that stopped) and says
nothing: a third of a take was judged, imported and enrolled as a 1 s clip. Each container
states how much audio follows its header, or marks its last page; :func:`truncation` reads that
without decoding and says what is missing.

- WAV (RIFF): the ``data`` chunk's length, wherever it lies (a ``JUNK`` chunk of a few kB, as
  recorders pad with, pushed it past the first 4 kB once read); RF64: the ``ds64`` chunk's
  64-bit length; Sony Wave64: its GUID-named ``data`` chunk; AIFF/AIFF-C: the ``SSND`` chunk;
  Sun/NeXT AU: its header's data length (a cut one was judged as a shorter clip; QA).
- Ogg (Vorbis, Opus, FLAC in Ogg): the last page is whole (bytes that are no page, an ID3 tag,
  may follow it); one not marked end-of-stream is :func:`unfinished`, a warning.
- FLAC: the sample count of STREAMINFO is checked after decoding (:mod:`tapcheck.audio`).

A length of 0 or all ones means "unknown" (a streamed writer): nothing to check then; a WAV
whose data length is 0 with audio after it is read to its end (:class:`SizedHeader`); one whose
data chunk is followed by many bytes that form no chunk is warned of (:func:`unread_tail`). A
WAV header's sample rate must be one libsndfile takes and agree with its byte rate, and its
sample width with its frame size (:func:`check_wav_rates`).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import BinaryIO

from .errors import AudioError

__all__ = ["SizedHeader", "check_wav_rates", "truncation", "unfinished", "unread_tail",
           "unsized_wav_data", "wav_chunks"]

MAX_CHUNKS = 4096  # a damaged header must not keep us walking
_W64_RIFF = b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb\x04\xc1\x00\x00"
_W64_DATA = b"data\xf3\xac\xd3\x11\x8c\xd1\x00\xc0\x4f\x8e\xdb\x8a"
_OGG_TAIL = 1 << 17  # an Ogg page is at most 65 307 bytes: the last one lies in the last 128 kB
_OGG_CANDIDATES = 64  # page headers checksummed, from the end


def truncation(f: BinaryIO, size: int) -> str | None:
    """Why the open audio file ``f`` of ``size`` bytes is cut short, or None.

    Parameters
    ----------
    f : binary file object
        Seekable; its position is restored.
    size : int
        The file's length in bytes.

    Returns
    -------
    str or None
        e.g. "its header promises 264600 bytes of audio, the file holds 132278".
    """
    at = f.tell()
    try:
        f.seek(0)
        head = f.read(16)
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            return _riff(f, size)
        if head[:4] == b"RF64" and head[8:12] == b"WAVE":
            return _rf64(f, size)
        if head[:16] == _W64_RIFF:
            return _w64(f, size)
        if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            return _aiff(f, size)
        if head[:4] == b".snd" and len(head) >= 12:  # Sun/NeXT AU: offset, length (big-endian)
            offset, length = struct.unpack(">II", head[4:12])
            return None if length == 0xFFFFFFFF else _promised(offset, length, size)
        if head[:4] == b"OggS":
            end = _ogg_end(f, size)
            return end[1] if end and end[0] == "cut" else None
        return None
    finally:
        f.seek(at)


def _promised(start: int, length: int, size: int) -> str | None:
    if start + length > size:
        return (f"its header promises {length} bytes of audio, the file holds "
                f"{max(size - start, 0)}")
    return None


def _chunks(f: BinaryIO, size: int, *, pos: int, fmt: str, align: int = 2):
    """(id, offset of its data, length) of each chunk from ``pos``: 4-byte id, then a length
    in ``fmt`` (``<I`` little-endian, ``>I`` big-endian); padded to ``align``."""
    for _ in range(MAX_CHUNKS):
        if pos + 8 > size:
            return
        f.seek(pos)
        header = f.read(8)
        if len(header) < 8:
            return
        chunk, (length,) = header[:4], struct.unpack(fmt, header[4:])
        yield chunk, pos + 8, length
        pos += 8 + length + (-length % align)


def wav_chunks(f: BinaryIO, size: int):
    """(id, offset of its data, length) of each chunk of the RIFF/WAVE file ``f``, in order."""
    return _chunks(f, size, pos=12, fmt="<I")


def _riff(f: BinaryIO, size: int) -> str | None:
    for chunk, start, length in wav_chunks(f, size):
        if chunk == b"data":
            # 0 and 0xFFFFFFFF: "unknown length" (streamed writers)
            return None if length in (0, 0xFFFFFFFF) else _promised(start, length, size)
    return None


def unsized_wav_data(f: BinaryIO, size: int) -> int | None:
    """Where the audio of a RIFF/WAVE file whose ``data`` chunk says length 0 begins, when
    audio bytes follow it (a recorder stopped before it wrote the sizes); else None.

    libsndfile reads such a file as holding no samples, and the clip was refused as "holds no
    samples — re-record", though all its audio was there (QA). The position of ``f`` is
    restored.
    """
    for chunk, start, length in _wave_chunks(f, size) or ():
        if chunk == b"data":
            return start if length == 0 and start < size else None
    return None


def unread_tail(f: BinaryIO, size: int) -> str | None:
    """Why a RIFF/WAVE file's audio may go on past what its header says, or None: more bytes
    follow its ``data`` chunk than a tenth of it (and 4 kB), and they form no chunk. A recorder
    that updates the header as it goes and stopped between two updates writes such a file;
    libsndfile reads the header's length and says nothing, so half a take was judged, and the
    only word was that the strike lay near the clip's end — "record the tap earlier" (QA).
    A warning, not an error: the bytes may be junk a tool appended. The position of ``f`` is
    restored."""
    chunks = _wave_chunks(f, size)
    at = f.tell()
    try:
        byte_rate = 0
        for chunk, start, length in chunks or ():
            if chunk == b"fmt " and length >= 12:
                f.seek(start + 8)
                byte_rate = struct.unpack("<I", f.read(4))[0]
            if chunk == b"data":
                if length in (0, 0xFFFFFFFF):
                    return None
                tail = size - _last_chunk_end(f, size, start + length + length % 2)
                if tail < max(4096, length // 10):
                    return None
                held = f"{length / byte_rate:.2f} s" if byte_rate else f"{length} bytes"
                return (f"its header's data chunk holds {held} of audio, but {tail} more bytes "
                        "that form no chunk follow it (the recorder stopped before it updated "
                        f"the header?); only the first {held} are read — if the rest is audio, "
                        "mend the header (sox --ignore-length in.wav out.wav)")
        return None
    finally:
        f.seek(at)


def _wave_chunks(f: BinaryIO, size: int) -> list[tuple[bytes, int, int]] | None:
    """:func:`wav_chunks` of ``f`` when it is a RIFF/WAVE file, else None; the position of
    ``f`` is restored."""
    at = f.tell()
    try:
        f.seek(0)
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        return list(wav_chunks(f, size))
    finally:
        f.seek(at)


def _last_chunk_end(f: BinaryIO, size: int, pos: int) -> int:
    """Where the chunks that follow ``pos`` end: at the first bytes that are no chunk (an id
    of four printable ASCII characters, a length within the file), or the file's end."""
    for chunk, start, length in _chunks(f, size, pos=pos, fmt="<I"):
        if not all(0x20 <= c <= 0x7E for c in chunk) or start + length > size:
            return start - 8
        pos = start + length + length % 2
    return min(pos, size)


class SizedHeader(io.RawIOBase):
    """The open file ``f`` read with the 32-bit little-endian sizes ``sizes`` (offset: value)
    in place of its header's: a WAV whose recorder never wrote them, read without copying
    the file into memory."""

    def __init__(self, f: BinaryIO, sizes: dict[int, int]):
        super().__init__()
        self._f = f
        self._patches = {at: struct.pack("<I", value) for at, value in sizes.items()}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def readinto(self, buffer) -> int:
        at = self._f.tell()
        n = self._f.readinto(buffer)
        view = memoryview(buffer).cast("B")
        for offset, data in self._patches.items():
            lo, hi = max(offset, at), min(offset + len(data), at + n)
            if lo < hi:
                view[lo - at:hi - at] = data[lo - offset:hi - offset]
        return n


def _rf64(f: BinaryIO, size: int) -> str | None:
    data_size = None
    for chunk, start, length in _chunks(f, size, pos=12, fmt="<I"):
        if chunk == b"ds64" and length >= 16:
            f.seek(start + 8)  # riffSize (8 bytes), then dataSize
            raw = f.read(8)
            data_size = struct.unpack("<Q", raw)[0] if len(raw) == 8 else None
        elif chunk == b"data":
            if length == 0xFFFFFFFF:
                length = data_size
            return None if not length else _promised(start, length, size)
    return None


def _w64(f: BinaryIO, size: int) -> str | None:
    pos = 40  # the riff GUID, its size, the wave GUID
    for _ in range(MAX_CHUNKS):
        if pos + 24 > size:
            return None
        f.seek(pos)
        header = f.read(24)
        if len(header) < 24:
            return None
        (length,) = struct.unpack("<Q", header[16:])  # counts its own 24-byte header
        if header[:16] == _W64_DATA:
            return None if length <= 24 else _promised(pos + 24, length - 24, size)
        if length < 24:
            return None  # damaged: libsndfile says what it makes of it
        pos += length + (-length % 8)
    return None


def _aiff(f: BinaryIO, size: int) -> str | None:
    for chunk, start, length in _chunks(f, size, pos=12, fmt=">I"):
        if chunk == b"SSND":
            # its length counts an offset and a block size (8 bytes) before the samples
            return None if length in (0, 0xFFFFFFFF) else _promised(start, length, size)
    return None


def unfinished(f: BinaryIO, size: int) -> str | None:
    """Why the open file ``f`` may end early though it reads whole, or None: an Ogg stream whose
    last page is not marked as its end (a recorder killed at a page boundary, or a writer that
    never closed the stream; libsndfile reads it all). A warning, not an error: its audio is
    whole as far as it goes."""
    at = f.tell()
    try:
        f.seek(0)
        if f.read(4) != b"OggS":
            return None
        end = _ogg_end(f, size)
        return end[1] if end and end[0] == "unfinished" else None
    finally:
        f.seek(at)


def _ogg_end(f: BinaryIO, size: int) -> tuple[str, str] | None:
    """("cut", why) when the last Ogg page was cut off, ("unfinished", why) when it is whole but
    not marked end-of-stream, else None."""
    f.seek(max(size - _OGG_TAIL, 0))
    tail = f.read()
    # the last page is the last "OggS" whose page checks out (its CRC): the four bytes also
    # occur by chance inside compressed audio. Only plausible headers are checked (version 0,
    # no undefined flag), and a few: a file of fake headers took 18 s of checksums
    at, tried = len(tail), 0
    while (at := tail.rfind(b"OggS", 0, at)) >= 0 and tried < _OGG_CANDIDATES:
        if at + 27 > len(tail) or tail[at + 4] != 0 or tail[at + 5] & ~0x07:
            continue
        tried += 1
        end = _page_end(tail, at)
        if end is None:  # cut off, or the four bytes inside a page: the page before decides
            continue
        if tail.startswith(b"OggS", end):  # a page begun after it, and cut off
            return "cut", "its last Ogg page is cut off"
        # other bytes after it (an ID3 tag, a copy's block padding) are no page: libsndfile
        # reads the stream whole
        if not tail[at + 5] & 0x04:
            return "unfinished", ("its last Ogg page is not marked as the end of the stream (a "
                                  "recording or copy that stopped?); it may end early")
        return None
    return "cut", "its last Ogg page is cut off"


def _page_end(data: bytes, at: int) -> int | None:
    """Where the Ogg page at ``at`` ends, if it is whole and its checksum holds, else None."""
    if at + 27 > len(data):
        return None
    segments = data[at + 26]
    body = at + 27 + segments
    if body > len(data):
        return None
    end = body + sum(data[at + 27:body])
    if end > len(data):
        return None
    page = bytearray(data[at:end])
    stored = struct.unpack("<I", page[22:26])[0]
    page[22:26] = bytes(4)
    return end if _ogg_crc(page) == stored else None


def _ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, initial value 0."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC_TABLE[((crc >> 24) ^ byte) & 0xFF]
    return crc


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if r & 0x80000000 else (r << 1) & 0xFFFFFFFF
        table.append(r)
    return table


_OGG_CRC_TABLE = _crc_table()


def check_wav_rates(path: Path, f: BinaryIO, size: int) -> None:
    """A WAV header's sample rate that libsndfile cannot take (0, or past its signed 32-bit
    field) is named as such: libsndfile says "SF_INFO struct incomplete", which read as a file
    that is not audio at all. The chunks are walked as the truncation check walks them."""
    for chunk, start, _ in wav_chunks(f, size):
        if chunk == b"fmt ":
            f.seek(start + 4)
            raw = f.read(4)
            f.seek(0)
            if len(raw) == 4 and not 1 <= struct.unpack("<I", raw)[0] <= 2**31 - 1:
                raise AudioError(f"its header gives an invalid sample rate "
                                 f"({struct.unpack('<I', raw)[0]} Hz)", path=path,
                                 fix="re-export the recording")
            f.seek(start)
            fields = f.read(16)
            f.seek(0)
            if len(fields) >= 14:
                _check_byte_rate(path, *struct.unpack("<HHIIH", fields[:14]))
            if len(fields) == 16:
                _check_sample_width(path, *struct.unpack("<HH4x4xHH", fields))
            return
    f.seek(0)


def _check_sample_width(path: Path, tag: int, channels: int, block_align: int,
                        bits: int) -> None:
    """PCM samples of ``bits`` take ceil(bits / 8) bytes each (12 bits in 2, as the WAVE
    format allows); a header whose frames are wider or narrower than that is damaged.
    libsndfile reads the bits and skips the frame size: a 16-bit take whose header said 7 bits
    was read as 8-bit noise at twice its length, and refused as "heavily clipped — lower the
    input gain" (QA)."""
    if tag == 1 and channels and block_align and bits and \
            block_align != channels * -(-bits // 8):
        raise AudioError(
            f"its header is damaged: its {bits}-bit samples take {-(-bits // 8)} byte(s) each, "
            f"but its frames of {channels} channel(s) are {block_align} bytes", path=path,
            fix="re-export the recording (or copy it again from the recorder)")


# WAVE format tags whose byte rate is the sample rate times the frame's bytes: PCM, float,
# A-law, mu-law, and the extensible header (whose subformats tapcheck meets are those)
_FRAMED_TAGS = (1, 3, 6, 7, 0xFFFE)


def _check_byte_rate(path: Path, tag: int, channels: int, rate: int, byte_rate: int,
                     block_align: int) -> None:
    """A header whose sample rate and byte rate disagree is damaged: which of the two is right
    is unknown, and one field edited to 22050 Hz of a 44.1 kHz take was resampled and judged
    ANOMALOUS with a confident score (QA)."""
    if tag in _FRAMED_TAGS and block_align and byte_rate != rate * block_align:
        raise AudioError(
            f"its header is damaged: its sample rate ({rate} Hz) and its byte rate "
            f"({byte_rate} bytes/s, {byte_rate / block_align:g} frames/s) disagree", path=path,
            fix="re-export the recording (or copy it again from the recorder)")
