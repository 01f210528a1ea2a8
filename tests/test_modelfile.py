"""Model files describe themselves, load with weights_only=True, and round-trip exactly."""

import os
import pickle
import re
import sys

import numpy as np
import pytest
import torch

from tapcheck import __version__
from tapcheck.errors import ModelFileError
from tapcheck.judge import Judge
from tapcheck.modelfile import load_model, partial_path, save_checkpoint, save_trained
from tapcheck.models import rebuild
from tapcheck.resume import read_partial
from tapcheck.models.base import represent_clips


def test_model_file_describes_itself(tiny_model):
    ck = torch.load(tiny_model, weights_only=True)
    assert ck["name"] == "arcface-resnet18" and ck["tapcheck_version"] == __version__
    assert ck["model_args"]["backbone"] == "resnet18" and ck["model_args"]["head"] == "arcface"
    assert ck["config"]["features"]["n_fft"] == 1024 and ck["config"]["train"]["epochs"] == 1
    assert ck["classes"][0] == "board01/left" and set(ck["class_labels"]) == {"normal", "defect"}
    assert ck["detector"]["kind"] == "knn" and ck["detector"]["reference"].ndim == 2
    assert len(ck["history"]) == 1 and "loss" in ck["history"][0]
    assert ck["dataset"]["calibration_clips"] > 0


def test_round_trip_gives_identical_scores(tiny_model, tiny_dataset, tmp_path):
    loaded = load_model(tiny_model)
    clips = np.random.default_rng(0).standard_normal((3, 2, 100, 120)).astype(np.float32)
    first = Judge(loaded).scores(clips)
    copy = save_checkpoint(tmp_path / "copy.pt", torch.load(tiny_model, weights_only=True))
    np.testing.assert_array_equal(Judge(copy).scores(clips), first)
    # the module rebuilt by hand from the stored args and weights gives the same embeddings
    ck = torch.load(tiny_model, weights_only=True)
    module = rebuild(ck["name"], ck["model_args"])
    module.load_state_dict(ck["state_dict"])
    module.eval()
    np.testing.assert_array_equal(represent_clips(module, clips, "knn").numpy(),
                                  represent_clips(loaded.module, clips, "knn").numpy())


class _Boom:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "tapcheck-model", "payload": _Boom()}, path)
    with pytest.raises(ModelFileError, match="refuses to load"):
        load_model(path)
    assert "pwned" not in capsys.readouterr().out


def test_format_2_files_load_and_a_newer_format_asks_for_an_upgrade(tiny_model, tmp_path):
    """A plant's model files of tapcheck 0.1.0 (format 2) load as they are; a file of a newer
    format says to upgrade, where tapcheck 0.1.0 called a newer tapcheck's file "damaged —
    retrain it" over a setting it did not know (upgrade QA)."""
    ck = torch.load(tiny_model, weights_only=True)
    assert ck["format_version"] == 3
    old = save_checkpoint(tmp_path / "old.pt", {**ck, "format_version": 2})
    assert load_model(old).detector.offset_ == load_model(tiny_model).detector.offset_
    newer = save_checkpoint(tmp_path / "newer.pt", {**ck, "format_version": 4,
                                                    "tapcheck_version": "0.3.0"})
    said = r"was written by tapcheck 0\.3\.0 in model format 4; this tapcheck \(0\.2\.0\) reads "
    with pytest.raises(ModelFileError, match=said + "formats 2-3") as e:
        load_model(newer)
    assert e.value.fix.startswith("upgrade tapcheck to read it")


@pytest.mark.parametrize("change, match", [
    (dict(format_version=99), "model format 99"),
    (dict(features_version=0), "features of version 0"),
    (dict(format="something-else"), "not a tapcheck model"),
])
def test_other_versions_are_refused(tiny_model, tmp_path, change, match):
    ck = torch.load(tiny_model, weights_only=True)
    ck.update(change)
    path = save_checkpoint(tmp_path / "other.pt", ck)
    with pytest.raises(ModelFileError, match=match):
        load_model(path)


@pytest.mark.parametrize("param, value, setting", [
    ("metric", "euclidean", "knn_metric"), ("exp", True, "knn_exp"), ("k", 1000000, "knn_k")])
def test_a_knn_detector_other_than_its_settings_is_damaged(tiny_model, tmp_path, param, value,
                                                           setting):
    """A metric of 'euclidean' under settings of 'cosine' loaded, and every tap of a healthy
    board scored 13 times the threshold (QA, a file edited by hand); so did an exp score or a
    k past the reference."""
    ck = torch.load(tiny_model, weights_only=True)
    assert ck["detector"]["params"][param] == ck["config"]["train"][setting]
    ck["detector"]["params"][param] = value
    path = save_checkpoint(tmp_path / "edited.pt", ck)
    with pytest.raises(ModelFileError) as e:
        load_model(path)
    assert f"edited.pt: is damaged: its detector's {param} is {value!r} but its settings' " \
        f"train.{setting} is {ck['config']['train'][setting]!r}" in str(e.value)


def test_not_a_model(tmp_path):
    (tmp_path / "a.pt").write_bytes(b"hello")
    with pytest.raises(ModelFileError, match="not a tapcheck model"):
        load_model(tmp_path / "a.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "b.pt")
    with pytest.raises(ModelFileError, match="not a tapcheck model"):
        load_model(tmp_path / "b.pt")
    # a manifest passed as --model: the unpickler reads its text as opcodes; no talk of code
    (tmp_path / "manifest.csv").write_text("path,board,side\nboard01/left/take001.wav,1,left\n")
    with pytest.raises(ModelFileError, match=r"is not a tapcheck model file \(not a PyTorch "
                                             r"file\) — use a model file written by"):
        load_model(tmp_path / "manifest.csv")
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "c.pt")


def test_a_partial_that_is_not_a_runs_progress_is_to_be_deleted(tiny_model, tmp_path):
    """A .partial cannot be replaced by another file the way a model file can: its fix is to
    delete it and start over, not "use a model file written by tapcheck train"."""
    fix = " — delete it and train without --resume (the run starts over)"
    text = tmp_path / "x.pt.partial"
    text.write_text("{}\n")
    other_version = torch.load(tiny_model, weights_only=True)
    other_version.update(format="tapcheck-partial", format_version=-1)
    for path, problem in [
            (text, "is not a tapcheck training checkpoint (not a PyTorch file)"),
            (tiny_model, "is not a tapcheck training checkpoint"),  # a model file as .partial
            (save_checkpoint(tmp_path / "old.pt.partial", other_version),
             f"was written by tapcheck {__version__} in model format -1; this tapcheck")]:
        with pytest.raises(ModelFileError) as e:
            read_partial(path)
        assert str(e.value).startswith(f"{path}: {problem}") and str(e.value).endswith(fix)


def test_damaged_weights(tiny_model, tmp_path):
    ck = torch.load(tiny_model, weights_only=True)
    ck["state_dict"].pop(next(iter(ck["state_dict"])))
    path = save_checkpoint(tmp_path / "damaged.pt", ck)
    with pytest.raises(ModelFileError, match="damaged") as e:
        load_model(path)
    # torch's own text, in one line without its line breaks and tabs (printed as "\n\t": QA)
    assert "Missing key(s) in state_dict: " in str(e.value)
    assert "\n" not in str(e.value) and "\t" not in str(e.value)


@pytest.mark.parametrize("section, key, value", [
    ("features", "n_fft", 2048), ("features", "hop_length", 64), ("features", "fmin_bin", 50),
    ("audio", "sr", 22050)])
def test_feature_settings_changed_after_training_are_refused(tiny_model, tmp_path, run_cli,
                                                             section, key, value):
    """Settings edited in the file that keep the crop's shape loaded without a word: n_fft 2048
    flagged a healthy tap (0.3851 against 0.0240) and 98 % of the demo's healthy taps."""
    ck = torch.load(tiny_model, weights_only=True)
    ck["config"][section][key] = value
    path = save_checkpoint(tmp_path / "edited.pt", ck)
    before = path.read_bytes()
    code, out, err = run_cli("judge", "--model", path, tmp_path / "any.wav")
    assert (code, out) == (2, "")
    assert err == (f"tapcheck: error: {path}: is damaged: its [audio] or [features] settings are "
                   "not the ones its network was trained with (changed after training?) — use "
                   "the model file as train wrote it, or train a model with the new settings\n")
    assert path.read_bytes() == before
    del ck["settings_digest"]  # a model file from before the digest: loads as it always did
    load_model(save_checkpoint(tmp_path / "old.pt", ck))


def test_weights_changed_after_training_are_refused(tiny_model, tiny_dataset, tmp_path,
                                                     run_cli):
    """Weights rewritten whole keep valid checksums: one layer scaled by 1000 loaded and judged
    every clip ANOMALOUS without a word (QA). The network's output for a fixed noise crop,
    stored at training, is computed again at every load."""
    ck = torch.load(tiny_model, weights_only=True)
    assert ck["fingerprint"]["representation"] == "knn"
    assert ck["fingerprint"]["output"].shape == (1, ck["model_args"]["embedding_dim"])
    assert ck["fingerprint"]["input"].shape == (1, 1, 100, 120)  # stored: torch's random
    # numbers may change from one release to the next
    layer = next(k for k, v in ck["state_dict"].items() if v.is_floating_point() and v.ndim == 4)
    clip = tiny_dataset.path_of(tiny_dataset.takes[0])
    for name, change in [("scaled", lambda w: w * 1000), ("10 % larger", lambda w: w * 1.1)]:
        edited = dict(ck, state_dict={**ck["state_dict"], layer: change(ck["state_dict"][layer])})
        path = save_checkpoint(tmp_path / f"{name}.pt", edited)
        before = path.read_bytes()
        code, out, err = run_cli("judge", "--model", path, clip)
        assert (code, out) == (2, ""), name
        assert err == (f"tapcheck: error: {path}: is damaged: its network no longer gives the "
                       "output it gave when it was trained (its weights were changed after "
                       "training) — copy it again from where it came from, or retrain it with "
                       "`tapcheck train`\n"), name
        assert path.read_bytes() == before
    # computed in bfloat16 (oneDNN's ONEDNN_DEFAULT_FPMATH_MODE=BF16 on some machines), the
    # network is still the one trained
    from tapcheck.fingerprint import TOLERANCE, difference

    module = load_model(tiny_model).module.to(torch.bfloat16)
    bf16 = dict(ck["fingerprint"], input=ck["fingerprint"]["input"].to(torch.bfloat16))
    assert difference(module, bf16, input_shape=(100, 120)) < TOLERANCE / 2
    # the weights of another training of the same shapes, under this file's settings
    other = {k: torch.randn_like(v) if v.is_floating_point() else v
             for k, v in ck["state_dict"].items()}
    with pytest.raises(ModelFileError, match="no longer gives the output"):
        load_model(save_checkpoint(tmp_path / "other.pt", dict(ck, state_dict=other)))
    old = dict(ck)  # a model file from before the fingerprint: loads as it always did
    del old["fingerprint"]
    assert Judge(save_checkpoint(tmp_path / "old.pt", old)).judge_files([clip])[0].score == \
        Judge(tiny_model).judge_files([clip])[0].score


def test_a_tensor_claiming_more_values_than_the_file_stores_is_refused(tiny_model, tmp_path,
                                                                       run_cli):
    """One reference row expanded (a stride of 0) to 10**8 rows: a 5 MB file asked judge for
    51 GB, and the allocation's traceback ended with exit status 1, judge's "anomalous" (QA).
    Three million rows asked for 1.8 GB and judged."""
    ck = torch.load(tiny_model, weights_only=True)
    reference = ck["detector"]["reference"]
    ck["detector"] = dict(ck["detector"], reference=reference[:1].clone().expand(3_000_000, -1),
                          reference_groups=ck["detector"]["reference_groups"][:1].clone()
                          .expand(3_000_000))
    path = tmp_path / "inflated.pt"
    torch.save(ck, path)
    assert path.stat().st_size < tiny_model.stat().st_size
    code, out, err = run_cli("judge", "--model", path, tmp_path / "any.wav")
    assert (code, out) == (2, "")
    assert err == (f"tapcheck: error: {path}: is damaged: its detector.reference claims more "
                   "values than the file stores — retrain it with `tapcheck train`\n")


def test_extra_contents_load_unless_a_tensor_cannot_be_measured(tiny_model, tmp_path, run_cli):
    """Extra contents no command reads load as before: a list holding itself gave the new check
    a RecursionError (traceback, exit status 1; review). A sparse tensor, whose storage cannot
    be measured, is refused with one line, and so are 3000 levels of lists: in a value a
    command reads, its error line recursed past Python's limit printing it (QA)."""
    ck = torch.load(tiny_model, weights_only=True)
    loop: list = []
    loop.append(loop)
    deep: list = []
    for _ in range(3000):
        deep = [deep]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)  # pickle writes nested lists by recursion
    try:
        for name, extra in [("loop", loop), ("deep", deep)]:
            torch.save(dict(ck, extra=extra), tmp_path / f"{name}.pt")
    finally:
        sys.setrecursionlimit(limit)
    load_model(tmp_path / "loop.pt")
    # and is written again (enroll rewrites a file it loaded): a list holding itself recursed
    # in the canonical form files are pickled from (review)
    again = torch.load(tmp_path / "loop.pt", weights_only=True)
    load_model(save_checkpoint(tmp_path / "loop-again.pt", again))
    with pytest.raises(ModelFileError, match=r"is damaged: its extra nests lists or dicts over "
                                             r"32 levels deep"):
        load_model(tmp_path / "deep.pt")
    deep_sr = dict(ck, config={**ck["config"], "audio": {**ck["config"]["audio"], "sr": deep}})
    sys.setrecursionlimit(20_000)
    try:
        torch.save(deep_sr, tmp_path / "deep-sr.pt")
    finally:
        sys.setrecursionlimit(limit)
    for command in (["judge", tmp_path / "any.wav"], ["enroll", "--list"]):
        code, out, err = run_cli(*command, "--model", tmp_path / "deep-sr.pt")
        assert (code, out) == (2, ""), err
        assert err == (f"tapcheck: error: {tmp_path / 'deep-sr.pt'}: is damaged: its "
                       "config.audio.sr nests lists or dicts over 32 levels deep — retrain it "
                       "with `tapcheck train`\n")
    path = tmp_path / "sparse.pt"
    torch.save(dict(ck, extra=torch.eye(3).to_sparse()), path)
    code, out, err = run_cli("judge", "--model", path, tmp_path / "any.wav")
    assert (code, out) == (2, "")
    assert err == (f"tapcheck: error: {path}: is damaged: its extra is a torch.sparse_coo "
                   "tensor, which model files never hold — retrain it with `tapcheck train`\n")


def test_pickle_module_is_what_torch_raises():
    # the malicious-file test above relies on torch raising UnpicklingError for foreign globals
    assert issubclass(pickle.UnpicklingError, Exception)


def test_a_missing_model_file_names_the_model_files_beside_it(tiny_model, tmp_path):
    """`configs/new-boards.toml` trains models/arcface-lite.pt while the commands default to
    models/arcface-resnet18.pt: the error says which file to pass."""
    with pytest.raises(ModelFileError, match="train one with") as alone:
        load_model(tmp_path / "arcface-resnet18.pt")
    assert alone.value.fix == "train one with `tapcheck train` or pass --model PATH"
    # not named: a link (enroll refuses one), a folder, an empty file
    (tmp_path / "a-link.pt").symlink_to(tiny_model)
    (tmp_path / "a-folder.pt").mkdir()
    (tmp_path / "an-empty.pt").touch()
    (tmp_path / "notes.pt").write_text("not a model")
    os.mkfifo(tmp_path / "a-fifo.pt")  # never opened: that would block
    with pytest.raises(ModelFileError, match="train one with"):
        load_model(tmp_path / "arcface-resnet18.pt")
    (tmp_path / "arcface-lite.pt").write_bytes(tiny_model.read_bytes())
    with pytest.raises(ModelFileError, match="model file not found") as beside:
        load_model(tmp_path / "arcface-resnet18.pt")
    assert beside.value.fix == f"pass --model {tmp_path / 'arcface-lite.pt'}"
    # a link whose file is gone is named as one: "not found" of a name `ls` lists misled
    (tmp_path / "dangling.pt").symlink_to(tmp_path / "gone" / "m.pt")
    with pytest.raises(ModelFileError) as dangling:
        load_model(tmp_path / "dangling.pt")
    assert str(dangling.value).startswith(f"{tmp_path / 'dangling.pt'}: is a link to "
                                          f"{tmp_path / 'gone' / 'm.pt'}, which does not exist")


def test_a_mistyped_model_is_offered_the_closest_name_first(tiny_model, tmp_path, monkeypatch):
    """In name order, `--model models/so.pt` was offered models/ae-knn.pt, `--model models/s0`
    the same, and `--model s0.pt` (from the folder above models/) a backup beside it."""
    models = tmp_path / "models"
    models.mkdir()
    for name in ("ae-knn.pt", "ae.pt", "demo-lite.pt", "s0.pt"):
        (models / name).write_bytes(tiny_model.read_bytes())
    (tmp_path / "s0.orig.pt").write_bytes(tiny_model.read_bytes())
    monkeypatch.chdir(tmp_path)

    def offered(model: str) -> str:
        with pytest.raises(ModelFileError) as e:
            load_model(model)
        return e.value.fix

    assert offered("models/so.pt").startswith("pass --model models/s0.pt (or ")
    assert offered("models/s0").startswith("pass --model models/s0.pt (or ")
    assert offered("s0.pt") == "pass --model models/s0.pt (or s0.orig.pt, models/ae.pt)"
    named = offered("models").removeprefix("pass the .pt file, e.g. ")
    assert named.startswith("models/") and (tmp_path / named).is_file()  # not a file not there


def test_the_missing_model_hint_names_no_file_cut_short(tiny_model, tmp_path, run_cli):
    """`judge --model bad/none.pt` said `pass --model bad/ro.pt (or bad/trunc.pt)`: trunc.pt
    is the first 100 kB of a model file, which starts like one and is none."""
    from .conftest import write_tone

    whole = tiny_model.read_bytes()
    (tmp_path / "ro.pt").write_bytes(whole)
    (tmp_path / "trunc.pt").write_bytes(whole[:100_000])
    code, out, err = run_cli("judge", "--model", tmp_path / "none.pt",
                             write_tone(tmp_path / "a.wav"))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.strip().endswith(f"model file not found — pass --model {tmp_path / 'ro.pt'}")


def test_the_missing_model_hint_names_only_tapcheck_model_files(tiny_model, tmp_path, run_cli):
    """With models/ holding arcface-lite.pt and ab-rand.pt (`torch.save(torch.randn(3, 3))`),
    `judge` said `pass --model models/ab-rand.pt (or models/arcface-lite.pt)`, and following it
    gave "is not a tapcheck model file". Whole PyTorch files that are no tapcheck model (a
    tensor, a dict of another format, a run's progress under a .pt name) are not named."""
    from .conftest import write_tone

    torch.save(torch.randn(3, 3), tmp_path / "ab-rand.pt")
    torch.save({"format": "someone-else", "weights": torch.zeros(2)}, tmp_path / "b-other.pt")
    progress = torch.load(tiny_model, map_location="cpu", weights_only=True)
    torch.save({**progress, "format": "tapcheck-partial"}, tmp_path / "c-progress.pt")
    (tmp_path / "arcface-lite.pt").write_bytes(tiny_model.read_bytes())
    code, out, err = run_cli("judge", "--model", tmp_path / "arcface-resnet18.pt",
                             write_tone(tmp_path / "a.wav"))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.strip().endswith(
        f"model file not found — pass --model {tmp_path / 'arcface-lite.pt'}"), err
    # the file named is one judge takes (a tone may well be ANOMALOUS: exit 1, not 2)
    code, out, err = run_cli("judge", "--model", tmp_path / "arcface-lite.pt", tmp_path / "a.wav")
    assert code in (0, 1) and "error" not in err, err


@pytest.mark.parametrize("junk", ["text", "model"])
def test_a_partial_that_is_no_progress_is_told_to_go_without_resume(junk, tiny_dataset,
                                                                    tiny_model, tmp_path,
                                                                    run_cli):
    """`echo hello > models/x.pt.partial`, then `train --out models/x.pt` said "an interrupted
    training run left its progress here — continue it with `tapcheck train --resume`…", and
    --resume said "is not a tapcheck training checkpoint … — delete it and train without
    --resume": a circle. Without --resume it now says what --resume says, with the fix that
    fits a run without it; the file is kept as it was."""
    partial = tmp_path / "x.pt.partial"
    if junk == "text":
        partial.write_text("hello\n")
    else:
        partial.write_bytes(tiny_model.read_bytes())
    before = partial.read_bytes()
    train = ("train", "--dataset", tiny_dataset.root, "--model", "arcface-lite", "--epochs", "1",
             "--out", tmp_path / "x.pt")
    code, out, err = run_cli(*train)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"tapcheck: error: {partial}: is not a tapcheck training checkpoint"), err
    assert "--resume" not in err and "interrupted" not in err, err
    assert err.strip().endswith(
        "— delete it and train again (no run can continue from it; the run starts over)"), err
    code, _, resumed = run_cli(*train, "--resume")  # the same problem, --resume's fix
    last = resumed.strip().splitlines()[-1]  # after a line on the calibration it prepared
    assert code == 2 and last.split(" — ")[0] == err.split(" — ")[0], resumed
    assert partial.read_bytes() == before and not (tmp_path / "x.pt").exists()


def test_the_catalogue_quotes_what_a_bad_model_file_gets(tiny_model, tmp_path):
    """docs/errors.md said truncated or empty model files get `x.pt: is not a tapcheck model
    file — use …`, and a bad `.partial` `(not a PyTorch file) — …`: the program says `(not a
    PyTorch file, or one cut short or damaged)` of both. Each message, its path written as the
    catalogue writes it, is quoted there whole."""
    from tapcheck.resume import check_partial

    from .conftest import ROOT

    catalogue = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    files = {"empty": b"", "truncated": tiny_model.read_bytes()[:100_000], "text": b"hello\n",
             "csv": b"path,board,side\nboard01/left/take001.wav,1,left\n"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    torch.save(torch.randn(3, 3), tmp_path / "tensor")
    said = {}
    for name in [*files, "tensor"]:
        with pytest.raises(ModelFileError) as e:
            load_model(tmp_path / name)
        shown = "recordings/bench/manifest.csv" if name == "csv" else "x.pt"
        said[name] = str(e.value).replace(str(tmp_path / name), shown)
        assert said[name] in catalogue, said[name]
    assert "cut short" in said["truncated"] and "cut short" not in said["tensor"]
    partial = tmp_path / "x.pt.partial"
    partial.write_text("hello\n")
    for resume in (True, False):
        with pytest.raises(ModelFileError) as e:
            (read_partial if resume else lambda p: check_partial(p, resume=False))(partial)
        message = str(e.value).replace(str(partial), "models/x.pt.partial")
        # the row quotes --resume's line whole, and the fix a run without it gets
        assert (message if resume else message.split(" — ")[1]) in catalogue, message


def test_a_finished_run_that_cannot_judge_writes_no_model_and_leaves_no_progress(tiny_model,
                                                                                 tmp_path):
    """`train` once left the 200 MB progress of such a run behind, and the next `train` then
    stopped at it ("an interrupted training run left its progress here")."""
    checkpoint = torch.load(tiny_model, map_location="cpu", weights_only=True)
    out = tmp_path / "m.pt"
    partial_path(out).write_bytes(b"progress")
    broken = {**checkpoint, "detector": {**checkpoint["detector"], "offset": float("nan")}}
    with pytest.raises(ModelFileError, match="not written: the trained model cannot judge") as e:
        save_trained(out, broken)
    assert not out.exists() and not partial_path(out).exists()
    # trained in bfloat16 (the default): float32 is named beside the learning rate and seed
    assert checkpoint["config"]["train"]["bf16"] is True
    assert e.value.fix == ("training diverged; lower train.lr or try another --seed, or train "
                           "in float32 (train.bf16 = false, as configs/fp32.toml sets)")
    fp32 = {**broken, "config": {**broken["config"],
                                 "train": {**broken["config"]["train"], "bf16": False}}}
    with pytest.raises(ModelFileError) as e:
        save_trained(out, fp32)
    assert e.value.fix == "training diverged; lower train.lr or try another --seed"
    partial_path(out).write_bytes(b"progress")
    save_trained(out, checkpoint)
    assert load_model(out).name == checkpoint["name"] and not partial_path(out).exists()


def test_a_model_file_stating_a_rare_rate_still_loads(tiny_model, tmp_path):
    """The 1e-4 bound on train.far is a new training's: a model file written with far = 1e-5
    was refused as damaged when the bound was a settings rule (review)."""
    ck = torch.load(tiny_model, weights_only=True)
    ck["config"]["train"]["far"] = 1e-5
    assert load_model(save_checkpoint(tmp_path / "rare.pt", ck)).config.train.far == 1e-5


def test_a_threshold_is_checked_against_a_refit_of_its_scores_only_when_far_off():
    """A fixed span refused real models: 3 clips at far 1e-4 fit a log-normal threshold some
    10**8 times above them. Far outside the span, the threshold is fitted again and compared."""
    from tapcheck.calibration import robust_threshold
    from tapcheck.detectorcheck import _check_threshold_against_scores

    scores = torch.tensor([0.004351, 0.005, 0.006817], dtype=torch.float64)
    for far, fit in ((1e-4, "lognormal"), (1e-3, "lognormal"), (0.05, "gamma")):
        fitted = robust_threshold(scores.numpy(), far=far, fit=fit)
        _check_threshold_against_scores(fitted, scores, params={"far": far,
                                                                "threshold_fit": fit}, path="m")
    assert robust_threshold(scores.numpy(), far=1e-4, fit="lognormal") > 1e3 * 0.006817
    for edited in (0.0, 1e6, 1e308):
        with pytest.raises(ModelFileError, match=re.escape(f"threshold {edited:.4g} is not "
                                                           "fitted to its calibration scores")):
            _check_threshold_against_scores(edited, scores, params={
                "far": 0.05, "threshold_fit": "lognormal"}, path="m")
    # a lowest score just under 0 (rounding) bounds nothing below
    _check_threshold_against_scores(-5.96e-8, torch.tensor([-5.96e-8] * 9 + [0.2]),
                                    params={"far": 0.05, "threshold_fit": "lognormal"}, path="m")


def test_a_model_file_damaged_on_disk_is_refused_by_its_checksums(tiny_model, tiny_dataset,
                                                                  tmp_path, run_cli):
    """4 kB of zeros inside the weights (a bad sector, a damaged copy) loaded without a word and
    judged with wrong scores, and enroll then rewrote the file with fresh checksums (QA): the
    zip members' CRC-32 are checked on load."""
    import shutil

    path = tmp_path / "m.pt"
    shutil.copy(tiny_model, path)
    member = _zero_inside_largest_part(path)
    before = path.read_bytes()
    take = tiny_dataset.path_of(tiny_dataset.takes[0])
    expected = (f"tapcheck: error: {path}: is damaged: its part {member.filename} fails its "
                "checksum (the file changed on disk or in a copy after it was written), so this "
                "model file cannot be trusted — copy it again from where it came from, or "
                "retrain it with `tapcheck train`\n")
    for args in (("judge", "--model", path, take), ("enroll", "--model", path, take),
                 ("evaluate", "--model", path, "--dataset", tiny_dataset.root)):
        code, out, err = run_cli(*args)
        assert (code, out, err) == (2, "", expected), args
    assert path.read_bytes() == before
    load_model(tiny_model)  # an undamaged copy loads

    # a run's progress alike, with the fixes a .partial gets (it is no copy of anything)
    from tapcheck.modelfile import PARTIAL_FORMAT, RESUME_FIX
    from tapcheck.resume import check_partial

    checkpoint = torch.load(tiny_model, map_location="cpu", weights_only=True)
    partial = tmp_path / "r.pt.partial"
    torch.save({**checkpoint, "format": PARTIAL_FORMAT}, partial)
    read_partial(partial)
    _zero_inside_largest_part(partial)
    with pytest.raises(ModelFileError) as e:
        read_partial(partial)
    assert "fails its checksum" in e.value.problem and e.value.fix == RESUME_FIX
    with pytest.raises(ModelFileError) as e:  # train without --resume: not told to resume
        check_partial(partial, resume=False)
    assert "fails its checksum" in e.value.problem and "--resume" not in e.value.fix

    # torch may write no CRCs (all 0): loaded as torch loads it
    torch.serialization.set_crc32_options(False)
    try:
        save_checkpoint(tmp_path / "no-crc.pt", checkpoint)
    finally:
        torch.serialization.set_crc32_options(True)
    load_model(tmp_path / "no-crc.pt")


def _zero_inside_largest_part(path):
    """4 kB of zeros inside the largest member of a zip as torch.save writes it (stored): a bad
    sector. Returns the member."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        member = max(archive.infolist(), key=lambda info: info.file_size)
    data = bytearray(path.read_bytes())
    offset = member.header_offset
    name_length, extra_length = struct.unpack("<HH", data[offset + 26:offset + 30])
    start = offset + 30 + name_length + extra_length + 64
    data[start:start + 4096] = bytes(4096)
    path.write_bytes(data)
    return member
