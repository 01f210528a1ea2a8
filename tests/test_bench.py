"""tapcheck bench: each measurement on small sizes, and the README table built from them."""

from __future__ import annotations

import pytest
import torch

from tapcheck import bench
from tapcheck.config import TrainConfig
from tapcheck.models import FAST_MODEL, get_spec


def test_resnet18_training_step_costs_what_the_readme_says():
    """The README's bound arithmetic rests on 10.48 GFLOP a sample for arcface-resnet18."""
    spec = get_spec("arcface-resnet18")
    torch.manual_seed(0)
    model = spec.build(n_classes=10, train=spec.resolve(TrainConfig()), input_shape=(100, 120))
    assert bench.step_flops(model, batch=2) / 1e9 == pytest.approx(10.48, abs=0.01)


def test_the_fast_model_costs_a_tenth_of_resnet18s_arithmetic():
    """docs/fast-model.md: 1.2 GFLOP a training sample against ResNet18's 10.48."""
    flops = {}
    for name in ("arcface-resnet18", FAST_MODEL):
        spec = get_spec(name)
        torch.manual_seed(0)
        model = spec.build(n_classes=10, train=spec.resolve(TrainConfig()), input_shape=(100, 120))
        flops[name] = bench.step_flops(model, batch=2) / 1e9
    assert flops[FAST_MODEL] == pytest.approx(1.17, abs=0.01)
    assert flops["arcface-resnet18"] / flops[FAST_MODEL] > 8


def test_bench_measures_everything_and_formats_the_table(tiny_dataset, tiny_model, tmp_path):
    from tapcheck.config import Config
    from tapcheck.featurecache import FeatureCache
    from tapcheck.modelfile import save_checkpoint
    from tapcheck.training import train_model

    clips = [tiny_dataset.path_of(t) for t in tiny_dataset.takes[:3]]
    fast = save_checkpoint(tmp_path / f"{FAST_MODEL}.pt", train_model(
        tiny_dataset, config=Config().replace("train", model=FAST_MODEL, epochs=1, batch_size=16),
        cache=FeatureCache(tmp_path / "model-cache"), progress=False))
    results = {
        "machine": {"cpu": "test", "cpus": 2, "torch": torch.__version__, "torch_threads": 1,
                    "bf16_native": True, "load_average_start": 1.25,
                    "load_average_end": 2.5},
        "matmul_gflops": bench.matmul_peak(n=256, repeats=2),
        "features": bench.feature_speed(clips, tmp_path / "cache"),
        "training": bench.training_speed(steps=1, batch=4),
        "judge": bench.judge_speed(tiny_model, clips),
        "judge_fast": bench.judge_speed(fast, clips),
        "memory_mb": {"train": 1.0, "judge_fast": 1.0, "judge": bench.peak_memory_mb(
            f"from tapcheck.judge import Judge; Judge({str(tiny_model)!r}).judge_files("
            f"[{str(clips[0])!r}])")},
    }
    assert all(v > 0 for v in results["matmul_gflops"].values())
    assert results["features"]["cached_clips_per_s"] > 0 < results["features"]["cold_clips_per_s"]
    models = [t["model"] for t in results["training"]]
    assert models == ["arcface-resnet18", FAST_MODEL, "arcface-shallow", "ae"]
    for t in results["training"]:
        assert t["speedup"] == pytest.approx(t["tapcheck_samples_per_s"] / t["naive_samples_per_s"])
    judge = results["judge"]
    assert judge["batch_size"] == 3 and judge["cold_cli_s_median"] > 0
    assert judge["network_gflop_per_clip"] == pytest.approx(7.0, abs=0.05)  # README: 7.0 GFLOP
    fast_judge = results["judge_fast"]
    assert judge["name"] == "arcface-resnet18" and fast_judge["name"] == FAST_MODEL
    assert fast_judge["network_gflop_per_clip"] == pytest.approx(0.78, abs=0.01)  # two crops
    assert results["memory_mb"]["judge"] > 200  # torch and a ResNet18: hundreds of MB
    for j in (judge, fast_judge):  # each step of a warm judgment timed alone
        assert set(j["steps_ms_median"]) == {"read", "features", "network", "score"}
        assert all(v > 0 for v in j["steps_ms_median"].values())
    table = bench.format_results(results)
    assert table.count("\n| training ") == 8 and "| `tapcheck judge clip.wav`" in table
    # the load the figures were measured at, in the table too (only the JSON had it; QA)
    assert "; load average 1.2 at the start, 2.5 at the end." in table
    # the fast model's rows set it against arcface-resnet18 of the same run
    study = results["training"][0]["tapcheck_samples_per_s"]
    ratio = results["training"][1]["tapcheck_samples_per_s"] / study
    assert f"| {FAST_MODEL} against arcface-resnet18 (same run) |" in table
    assert "| training, samples/s (tapcheck's loop) | " in table and f"{ratio:.2f}x |" in table
    assert "| judge, each step alone (median): read / features / network / score | " in table
    # bench --model of another model: its judging column is named for it (it read
    # arcface-resnet18 over ae's figures; QA)
    other = {**results, "judge": {**results["judge"], "name": "ae"}}
    assert (f"| {FAST_MODEL} against arcface-resnet18 (training), ae (judging) (same run) |"
            in bench.format_results(other))
    # bench --model of a fast model: no judging ratio of one network against itself (it
    # printed 0.3x for two runs of arcface-lite; QA)
    itself = bench.format_results({**results, "judge": {**results["judge"], "name": FAST_MODEL}})
    rows = itself.split(f"| {FAST_MODEL} against arcface-resnet18 (same run; --model is "
                        f"{FAST_MODEL} itself: its judging is in the table above) |")[1]
    assert "| training, samples/s (tapcheck's loop) | " in rows and "judge" not in rows.split(
        "\n", 1)[1], rows
    # a share over the matrix-product peak says the peak was measured low
    low = {**results, "matmul_gflops": {"bfloat16": 1e-6, "float32": 1e-6}}
    assert "(over the peak measured: the load varied)" in bench.format_results(low)
    old = {k: v for k, v in results.items() if k != "judge_fast"}  # a file from before it
    assert "against arcface-resnet18" not in bench.format_results(old)
    old["machine"] = {k: v for k, v in results["machine"].items() if "load" not in k}
    assert "load average" not in bench.format_results(old)


def test_a_failing_judge_is_not_timed(tmp_path):
    bad = tmp_path / "empty.wav"
    bad.touch()
    with pytest.raises(RuntimeError, match="tapcheck judge failed"):
        bench._judge_from_shell(tmp_path / "no-model.pt", bad)


@pytest.mark.parametrize("content", [b"not a model, a shopping list\n", b""])
def test_a_model_that_is_not_one_is_refused_before_any_measurement(tmp_path, content):
    from tapcheck.errors import ModelFileError

    fake = tmp_path / "notes.pt"
    fake.write_bytes(content)

    def log(line):  # the first measurement logs first: minutes of runs before the model was read
        raise AssertionError(f"measuring began: {line}")

    with pytest.raises(ModelFileError, match="notes.pt"):
        bench.run_bench(model=fake, out=tmp_path / "bench.json", log=log)
    assert not (tmp_path / "bench.json").exists()


@pytest.mark.parametrize("where", ["recordings/demo/bench.json", "recordings/b.json"])
def test_bench_out_in_a_dataset_or_the_recordings_folder_is_refused_before_work(
        tiny_dataset, tmp_path, run_cli, monkeypatch, where):
    """QA: `bench --out recordings/demo/bench.json` wrote its report beside the manifest after
    five minutes of runs; compare --out and judge --explain-dir refused such folders."""
    import shutil

    home = tmp_path / "recordings"
    shutil.copytree(tiny_dataset.root, home / "demo")
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(home))
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("bench", "--out", where)
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert "mix its files with the" in err and err.strip().endswith(
        "— choose another --out, e.g. reports/bench.json")
    assert not (tmp_path / where).exists()


def test_bench_model_is_read_as_judge_reads_it_before_any_run(tmp_path, run_cli):
    """It said "model file not found — pass a .pt file" of a folder and of a dangling link."""
    (tmp_path / "models").mkdir()
    (tmp_path / "dangling.pt").symlink_to(tmp_path / "nowhere.pt")
    for given, said in ((tmp_path / "models", "is a folder, not a model file"),
                        (tmp_path / "dangling.pt", f"is a link to {tmp_path / 'nowhere.pt'}, "
                                                   "which does not exist")):
        code, out, err = run_cli("bench", "--model", given, "--out", tmp_path / "b.json")
        assert (code, out) == (2, ""), err
        assert err.startswith(f"tapcheck: error: {given}: {said} — ") and err.count("\n") == 1
    assert not (tmp_path / "b.json").exists()
