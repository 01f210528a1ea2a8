"""Figures: matplotlib keeps its files in tapcheck's cache, never in a home folder of its own
choosing (it made ~/.config/matplotlib, and a missing home folder with it)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DRAW = ("import os; from tapcheck.plots import pyplot; plt = pyplot(); fig = plt.figure(); "
        "fig.text(0.5, 0.5, 'tap'); fig.savefig('f.png'); print(os.environ.get('MPLCONFIGDIR'))")


@pytest.mark.parametrize("home_exists", [True, False], ids=["home", "no-home"])
def test_matplotlib_writes_only_into_tapchecks_cache(tmp_path, home_exists):
    home = tmp_path / "home"
    if home_exists:
        home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "TAPCHECK_CACHE",
                                                            "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", DRAW], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert (tmp_path / "f.png").stat().st_size > 0
    assert result.stdout == "None\n"  # set for matplotlib's import only, not for children
    if home_exists:  # matplotlib's files under the cache's folder, nothing else in the home
        assert [p.relative_to(home).as_posix() for p in home.rglob("*") if p.is_dir()] == [
            ".cache", ".cache/tapcheck", ".cache/tapcheck/matplotlib"]
    else:  # a temporary folder, gone at exit; the home folder not made
        assert not home.exists()
