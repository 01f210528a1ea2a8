"""What a recording's coding costs the model: lossy codings (MP3, Ogg Vorbis, …) are read, with
a warning, as :func:`tapcheck.audio.load` reads every clip."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

# Codings that drop what the ear misses; the model reads it. MP3 and Ogg Vorbis copies of 8 of
# the demo's healthy test taps scored 0.87-1.39 and 0.96-1.35 times the WAV's (the demo model,
# libsndfile's default quality), where 8-bit, which judge warns of too, moved one 0.037/0.026;
# as Opus and GSM 6.10 one tap scored 3.4 and 3.7 times (QA: GSM turned it ANOMALOUS). MP3 was
# judged without a word, even named .wav (QA). "Its score": import's take is judged in training
LOSSY_CODINGS = {"MPEG_LAYER_I": "MPEG layer I", "MPEG_LAYER_II": "MP2",
                 "MPEG_LAYER_III": "MP3", "VORBIS": "Ogg Vorbis", "OPUS": "Opus",
                 "GSM610": "GSM 6.10", "ULAW": "µ-law", "ALAW": "A-law",
                 "IMA_ADPCM": "IMA ADPCM", "MS_ADPCM": "Microsoft ADPCM",
                 "VOX_ADPCM": "VOX ADPCM", "G721_32": "G.721", "G723_24": "G.723",
                 "G723_40": "G.723", "NMS_ADPCM_16": "NMS ADPCM", "NMS_ADPCM_24": "NMS ADPCM",
                 "NMS_ADPCM_32": "NMS ADPCM"}
# the file-name endings each container is known by: a lossy file named otherwise is said to be
_CONTAINER_SUFFIXES = {"MP3": (".mp3",), "OGG": (".ogg", ".oga", ".opus"),
                       "WAV": (".wav", ".wave"), "WAVEX": (".wav", ".wave")}


def lossy_warning(path: str | os.PathLike, *, subtype: str, container: str) -> str:
    """The warning for a recording in a lossy coding.

    Parameters
    ----------
    path : str or PathLike
        The file, named in the warning.
    subtype : str
        Its coding as libsndfile names it (``sf.info(path).subtype``), one of
        :data:`LOSSY_CODINGS`.
    container : str
        Its container (``sf.info(path).format``): a file named otherwise is said to be.
    """
    name = LOSSY_CODINGS[subtype]
    known = _CONTAINER_SUFFIXES.get(container)
    suffix = Path(path).suffix
    named = f" (though named {suffix})" if known and suffix and suffix.lower() not in known else ""
    return (f"{path}: is {name}{named}, a lossy coding, which changes the spectrum the model "
            "reads (healthy taps scored up to 1.4 times as much as MP3 or Ogg Vorbis, 3.4-3.7 "
            "times as Opus or GSM); its score may be off — record or export WAV or FLAC")


#: a take's manifest ``source`` when ``import`` read it from a lossy coding: "import (MP3)".
#: Stored as a 16-bit WAV, the take no longer showed what it was read from (QA)
_IMPORTED_LOSSY = re.compile(r"\Aimport \((.+)\)\Z")


def import_source(path: str | os.PathLike) -> str:
    """The manifest ``source`` of a take imported from ``path``: ``"import"``, or
    ``"import (MP3)"`` (the coding's name) when the file is in a lossy coding."""
    import soundfile as sf

    try:  # a file object: soundfile encodes a name as UTF-8, and some names are not (QA)
        with open(path, "rb") as f:
            subtype = sf.info(f).subtype
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError):  # read already: only the
        return "import"  # coding's name is lost
    return f"import ({LOSSY_CODINGS[subtype]})" if subtype in LOSSY_CODINGS else "import"


def lossy_takes_warning(root: str | os.PathLike, sources: Iterable[str], *,
                        what: str = "takes") -> str | None:
    """The warning for a dataset some of whose takes were imported from lossy codings, or None.

    Parameters
    ----------
    root : str or PathLike
        The dataset's folder, named in the warning.
    sources : iterable of str
        The manifest ``source`` of each of its takes (:func:`import_source`).
    what : str
        What those takes are, as the warning counts them: "takes", "training takes".
    """
    sources = list(sources)
    codings = Counter(m[1] for m in map(_IMPORTED_LOSSY.match, sources) if m)
    if not codings:
        return None
    n = sum(codings.values())
    names = ", ".join(f"{name} x{count}" for name, count in sorted(codings.items()))
    return (f"{root}: {n} of its {len(sources)} {what} were imported from lossy codings "
            f"({names}), whose spectra differ from what the microphone heard — re-import "
            "WAV or FLAC recordings of those boards")
