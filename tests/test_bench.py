"""tapcheck bench: each measurement on small sizes, and the README table built from them."""

from __future__ import annotations

import pytest
import torch

from tapcheck import bench
from tapcheck.config import TrainConfig
from tapcheck.models import get_spec


def test_resnet18_training_step_costs_what_the_readme_says():
    """The README's bound arithmetic rests on 10.48 GFLOP a sample for arcface-resnet18."""
    spec = get_spec("arcface-resnet18")
    torch.manual_seed(0)
    model = spec.build(n_classes=10, train=spec.resolve(TrainConfig()), input_shape=(100, 120))
    assert bench.step_flops(model, batch=2) / 1e9 == pytest.approx(10.48, abs=0.01)


def test_bench_measures_everything_and_formats_the_table(tiny_dataset, tiny_model, tmp_path):
    clips = [tiny_dataset.path_of(t) for t in tiny_dataset.takes[:3]]
    results = {
        "machine": {"cpu": "test", "cpus": 2, "torch": torch.__version__, "torch_threads": 1,
                    "bf16_native": True},
        "matmul_gflops": bench.matmul_peak(n=256, repeats=2),
        "features": bench.feature_speed(clips, tmp_path / "cache"),
        "training": bench.training_speed(steps=1, batch=4),
        "judge": bench.judge_speed(tiny_model, clips),
        "memory_mb": {"train": 1.0, "judge": bench.peak_memory_mb(
            f"from tapcheck.judge import Judge; Judge({str(tiny_model)!r}).judge_files("
            f"[{str(clips[0])!r}])")},
    }
    assert all(v > 0 for v in results["matmul_gflops"].values())
    assert results["features"]["cached_clips_per_s"] > 0 < results["features"]["cold_clips_per_s"]
    models = [t["model"] for t in results["training"]]
    assert models == ["arcface-resnet18", "arcface-shallow", "ae"]
    for t in results["training"]:
        assert t["speedup"] == pytest.approx(t["tapcheck_samples_per_s"] / t["naive_samples_per_s"])
    judge = results["judge"]
    assert judge["batch_size"] == 3 and judge["cold_cli_s_median"] > 0
    assert judge["network_gflop_per_clip"] == pytest.approx(7.0, abs=0.05)  # README: 7.0 GFLOP
    assert results["memory_mb"]["judge"] > 200  # torch and a ResNet18: hundreds of MB
    table = bench.format_results(results)
    assert table.count("\n| training ") == 6 and "| `tapcheck judge clip.wav`" in table


def test_a_failing_judge_is_not_timed(tmp_path):
    bad = tmp_path / "empty.wav"
    bad.touch()
    with pytest.raises(RuntimeError, match="tapcheck judge failed"):
        bench._judge_from_shell(tmp_path / "no-model.pt", bad)
