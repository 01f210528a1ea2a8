"""Where a training may write its model file: only over nothing, or over a tapcheck model
file it may replace.

``train --out`` once overwrote whatever it was given (a take, a manifest, a device node), and
``train --dataset bench`` replaced the model of another dataset at the default ``--out``
without a word. :func:`check_model_target` runs before any training, so a refusal costs
nothing.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from .errors import ModelFileError


#: ``made_by`` of a model file ``tapcheck demo`` wrote: the only one demo replaces
DEMO_MADE = "tapcheck demo"


def check_out_name(out: str | os.PathLike) -> None:
    """``out`` must name a model file: ``.``, ``..``, ``x/..`` or ``x/`` name a folder whether
    it exists or not (``--out .`` gave a traceback, and ``--out new/..`` trained for the whole
    run and then failed to save; QA), and ``p.pt.lock`` or ``p.pt.partial`` the files tapcheck
    keeps beside model file ``p.pt``.

    Raises
    ------
    ModelFileError
    """
    path = os.fspath(out)
    if os.path.basename(path) in ("", ".", ".."):
        raise ModelFileError("names a folder; --out names the model file to write", path=path,
                             fix="e.g. --out " + os.path.join(path, "model.pt"))
    for side in (".lock", ".partial"):  # a model saved as p.pt.lock then blocked p.pt's runs
        if path.endswith(side) and len(os.path.basename(path)) > len(side):
            model = path[:-len(side)]
            raise ModelFileError(
                f"is the name of the {side} file tapcheck keeps beside model file "
                f"{os.path.basename(model)}; a model saved there would block that one's runs",
                path=path, fix=f"name the model file itself, e.g. --out {model}")


def check_model_target(out: str | os.PathLike, *, elsewhere: str | None = None,
                       only_made_by: str | None = None, dataset: Any = None) -> str | None:
    """Before training: ``--out`` may only replace a tapcheck model file (or nothing).

    ``train --out`` once overwrote whatever it was given — a take, a manifest, a device node —
    and an existing folder failed only after the whole run.

    ``elsewhere``: how the caller's user has the model written elsewhere, the fix of every
    refusal; default: choose another ``--out``. ``demo`` has no ``--out`` and says its own
    (it told a user to "choose another --out").

    ``only_made_by``: an existing model file is replaced only if its ``made_by`` is this
    (``demo`` writes ``models/<model>.pt`` unasked, and replaced a model `train` had made).

    ``dataset``: the :class:`~tapcheck.datasets.Dataset` to be trained on (``train``). A model
    trained on another dataset is not replaced: ``train --dataset bench`` wrote over the
    model of another dataset at the default ``--out`` without a word. One ``demo`` made is
    replaced, and said. A dataset is told by its recordings (:func:`same_dataset`).

    Returns
    -------
    str or None
        What replacing the existing file means, when the user should hear it.

    Raises
    ------
    ModelFileError
        ``out`` is a folder, a fifo/device/socket, a file tapcheck did not write as a model, a
        read-only model file, or one holding enrolments (which a new model would lose).
    """
    from .dataset_folders import dataset_holding
    from .file_kinds import refuse_read_only, refuse_special
    from .modelfile import FORMAT
    from .paths import cache_home, model_command, recordings_home

    path = os.fspath(out)
    fix = elsewhere or "choose another --out, e.g. models/<name>.pt"
    check_out_name(path)
    if os.path.isdir(path) and elsewhere:
        raise ModelFileError("is a folder, where the model file is to be written", path=path,
                             fix=elsewhere)
    if os.path.isdir(path):
        raise ModelFileError("is a folder; --out names the model file to write", path=path,
                             fix="e.g. --out " + os.path.join(path, "model.pt"))
    refuse_special(path, ModelFileError, fix=fix)
    # a model file among a dataset's takes (--out recordings/x/board01/left/take007.wav): judge
    # board01/left/*.wav then met it, and doctor took it for an unlisted recording
    holder = dataset_holding(os.path.dirname(path) or ".")
    if holder is not None:
        shown = os.path.relpath(holder)
        shown = shown if not shown.startswith("..") and shown != "." else os.fspath(holder)
        # models/ here, or beside the dataset's folder when here is inside it ("models/x.pt"
        # from inside it was refused again)
        name = os.path.splitext(os.path.basename(path))[0] + ".pt"
        base = holder.parent  # not the recordings folder, where a dataset may be made around it
        if base.name == "recordings" or base.resolve() == recordings_home().resolve():
            base = base.parent
        beside = os.path.join("models", name) if dataset_holding("models") is None else \
            os.path.relpath(base / "models" / name)
        raise ModelFileError(f"lies in dataset {shown}, where a model file would mix with its "
                             "takes", path=path, fix=elsewhere or "choose another --out, "
                             f"outside the dataset, e.g. {beside}")
    cache = os.path.realpath(cache_home())
    if Path(os.path.realpath(os.path.dirname(os.path.abspath(path)))).is_relative_to(cache):
        # a cache is there to be emptied (by the user, a disk cleaner): the model would go
        # with the crops, where nothing says a trained model lies (QA)
        name = os.path.splitext(os.path.basename(path))[0] + ".pt"
        beside = os.path.join("models", name)
        if Path(os.path.realpath(beside)).is_relative_to(cache):  # run from inside the cache
            beside = os.path.join(os.path.dirname(cache), "models", name)
        raise ModelFileError(
            f"lies in the feature cache folder {cache}, which may be emptied at any time "
            "(a cache holds only what can be computed again)", path=path,
            fix=elsewhere or f"choose another --out outside it, e.g. {beside}")
    if not os.path.lexists(path):
        return
    if os.path.islink(path):
        raise ModelFileError("is a symbolic link; tapcheck does not write through links",
                             path=path, fix=fix)
    try:
        head = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError:  # was "exists and is not a tapcheck model file" (review)
        raise ModelFileError("may not be read (permission denied), so what it holds is not "
                             "known", path=path, fix="check its permissions (ls -l), or "
                                                     + fix) from None
    except Exception:  # noqa: BLE001 - anything unreadable as a checkpoint is not ours
        head = None
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise ModelFileError("exists and is not a tapcheck model file; tapcheck overwrites only "
                             "its own model files", path=path, fix=fix)
    refuse_read_only(path, ModelFileError, what="training", fix="make it writable (chmod u+w) "
                     "if it is meant to be replaced, or " + fix, disk_fix=fix)
    enrolled = head.get("enrolled")
    if isinstance(enrolled, list) and enrolled:  # taps a user added: no retraining brings them
        raise ModelFileError(
            f"holds {len(enrolled)} enrolment(s) (taps added with `tapcheck enroll`) that a new "
            "model here would lose", path=path,
            fix=f"{elsewhere or 'choose another --out'}, or delete the file if they are not "
                f"needed (`{model_command(path, 'enroll', '--list')}` shows them)")
    if only_made_by is not None and head.get("made_by") != only_made_by:
        raise ModelFileError(
            f"is a model `{only_made_by}` did not train (`tapcheck train` or older), and it "
            "replaces only its own", path=path, fix=fix)
    source = head.get("dataset") if isinstance(head.get("dataset"), dict) else {}
    trained_on = source.get("path")
    if dataset is None:
        return None
    if not isinstance(trained_on, str) or same_dataset(head, dataset):
        # retraining on the same dataset (or a file that does not say): a new run, said with
        # what is replaced — a wrong --config or --scorer replaced a tuned model without a word
        # (data QA)
        return (f"replacing {path} ({_held(head)}) when this run ends; stopped before, the "
                "run leaves it as it is")
    if trained_on in (".", "..") and isinstance(source.get("name"), str) and source["name"]:
        trained_on = source["name"]  # `--dataset .` from its folder: "(.)" named nothing here
    if head.get("made_by") == DEMO_MADE:  # demo replaces its own; so may train, saying so
        return f"replacing {path}, a model `tapcheck demo` made (trained on {trained_on})"
    folder = os.path.dirname(path)
    name = os.path.basename(os.path.realpath(dataset.root)) or "model"  # `--dataset .`: ""
    other = os.path.join(folder, f"{name}.pt")
    if os.path.realpath(other) == os.path.realpath(path):
        other = os.path.join(folder, f"{name}-2.pt")
    raise ModelFileError(
        f"holds a model trained on another dataset ({trained_on}), which training on "
        f"{dataset.root} would replace", path=path,
        fix=f"{elsewhere or f'choose another --out, e.g. --out {other}'}, or delete {path} "
            "first if that model is no longer needed")


def same_dataset(head: dict[str, Any], dataset: Any) -> bool:
    """Whether the model ``head`` was trained on ``dataset``: some of its training takes are
    in it, by path and bytes (a dataset moved, renamed, grown or named as ``.`` is the same;
    another site's dataset of the same name is not). A file without digests (before
    2026-12-03) is told by the dataset's name or folder. The model's own folder, as it was
    named, is the same dataset; while that dataset is still there (:func:`_held_elsewhere`),
    any other folder is another one.

    When none of the model's takes is listed at its path, their files are looked for in the
    dataset's folder: the training takes taken out of the manifest and a new lot listed
    instead read as another dataset. When none is there either (the takes moved into another
    folder), up to :data:`SAME_DATASET_LOOKS` of the dataset's takes are compared by bytes
    alone: its stored folder, as typed, names any site's ``recordings/plant``."""
    from .modelfile import provenance
    from .copies import take_digests

    listed = provenance(head, "takes") + provenance(head, "calibration_takes")
    digests = provenance(head, "digests")
    if digests and len(digests) == len(listed):
        stored = head["dataset"].get("path")
        if isinstance(stored, str) and stored and \
                os.path.realpath(stored) == os.path.realpath(dataset.root):
            return True  # its own folder, named as it was (a dataset re-made there too)
        if _held_elsewhere(head["dataset"].get("name"), stored, listed, digests, dataset):
            return False
        here = {t.path: t for t in dataset.takes}
        pairs = [(here[p], d) for p, d in zip(listed, digests, strict=True) if p in here][:5]
        if pairs:
            found = take_digests(dataset, [t for t, _ in pairs])
            return any(f == d for f, (_, d) in zip(found, pairs, strict=True))
        # the model's takes taken out of the manifest, their files still in this folder
        found = _holds_recordings(dataset.root, listed, digests)
        if found is not None:
            return found
        heard = set(digests)
        return any(d in heard for d in take_digests(dataset,
                                                    dataset.takes[:SAME_DATASET_LOOKS]))
    source = head["dataset"]
    root = os.path.realpath(dataset.root)
    return source.get("name") == os.path.basename(root) or \
        os.path.realpath(source["path"]) == root


def _held_elsewhere(name: Any, stored: Any, listed: list[str], digests: list[str],
                    dataset: Any) -> bool:
    """Whether the model's own dataset is still there, another folder than ``dataset``'s:
    then ``dataset`` is another dataset, whatever recordings the two share (a dataset
    synthesised with the same seed, takes imported from the other, a copy). Its model was
    replaced without a word (trial 39: ``synth --dataset small`` holds the demo's first takes).

    An absolute ``stored`` folder names it wherever it lies (``--dataset /srv/bench``): a
    dataset's folder there is the model's, told by its manifest alone, nothing read. A
    relative one was typed from a working folder nobody recorded (``.`` read from elsewhere
    named another dataset), so the model's dataset is looked for in the recordings folder by
    its ``name``, as ``explain`` finds its references there, and told by its recordings."""
    from .manifest import MANIFEST, SLUG
    from .paths import recordings_home

    if isinstance(stored, str) and os.path.isabs(stored):
        return os.path.isfile(os.path.join(stored, MANIFEST))  # not dataset's: checked first
    if not isinstance(name, str) or not SLUG.fullmatch(name):
        return False
    folder = recordings_home() / name
    if not (folder / MANIFEST).is_file() or \
            os.path.realpath(folder) == os.path.realpath(dataset.root):
        return False
    return bool(_holds_recordings(folder, listed, digests))


def _holds_recordings(folder, listed: list[str], digests: list[str]) -> bool | None:
    """Whether the first few of the model's takes found in ``folder`` (:func:`_inside`) hold
    its recordings, by bytes; None when none is there."""
    from .copies import content_digest

    kept = [(f, d) for p, d in zip(listed, digests, strict=True)
            if (f := _inside(folder, p)) is not None][:5]
    return any(content_digest(f) == d for f, d in kept) if kept else None


def _inside(root: str | os.PathLike, path: str) -> str | None:
    """``root/path`` if it is a regular file inside ``root`` (links resolved), else None: a
    model file's stored paths are read only within the dataset given (a hand-edited file could
    name ``../../etc/passwd``; a fifo would block the read)."""
    base = os.path.realpath(root)
    full = os.path.realpath(os.path.join(base, path))
    if os.path.isabs(path) or not full.startswith(base + os.sep) or not os.path.isfile(full):
        return None
    return full


#: takes read by bytes to tell a dataset whose takes all moved (a few MB: seconds at most)
SAME_DATASET_LOOKS = 50


def _held(head: dict) -> str:
    """What a model file holds, for the line that says it is replaced: "arcface-lite, knn
    scorer, cross-fit threshold 0.2889, trained 2026-12-06 05:10"."""
    parts = [head["name"]] if isinstance(head.get("name"), str) else []
    detector = head.get("detector") if isinstance(head.get("detector"), dict) else {}
    if isinstance(detector.get("kind"), str):
        parts.append(f"{detector['kind']} scorer")
    calibration = detector.get("calibration") if isinstance(detector.get("calibration"),
                                                            dict) else {}
    threshold, method = calibration.get("threshold"), calibration.get("method")
    if isinstance(threshold, float) and isinstance(method, str):
        parts.append(f"{method} threshold {threshold:.4g}")
    try:  # local time with its zone, as the inspection log shows it: UTC read hours off (review)
        when = datetime.fromisoformat(head["created_at"]).astimezone()
    except (KeyError, TypeError, ValueError, OverflowError):  # hand-edited: year 1 shifted
        when = None
    if when is not None:
        parts.append(f"trained {when:%Y-%m-%d %H:%M %Z}")
    return ", ".join(parts) or "a tapcheck model"
