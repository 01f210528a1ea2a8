"""The command's entry point (tapcheck/entry.py)."""

import subprocess
import sys
from pathlib import Path

import pytest

from tapcheck import __version__

from .conftest import default_signals

ROOT = Path(__file__).resolve().parents[1]

# a Ctrl-C while the command line loads: sent to itself as its first import begins
INTERRUPTED_LOADING = """
import builtins, os, signal, sys
import tapcheck.entry
real = builtins.__import__
def interrupting(name, *args, **kwargs):
    if name in ("cli", "click"):
        builtins.__import__ = real
        os.kill(os.getpid(), signal.SIGINT)
    return real(name, *args, **kwargs)
builtins.__import__ = interrupting
sys.exit(tapcheck.entry.main())
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_ctrl_c_while_the_command_line_loads_is_one_line_and_130(sig):
    """It ended in a KeyboardInterrupt traceback (QA): a Ctrl-C a second later says
    `tapcheck: interrupted`, exit 130, and so does one while loading; `kill` and a closed
    terminal ended it silently (143, 129: QA)."""
    script = INTERRUPTED_LOADING.replace("signal.SIGINT", f"signal.{sig}")
    result = subprocess.run([sys.executable, "-c", script, "info"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60,
                            preexec_fn=default_signals)
    assert (result.returncode, result.stdout, result.stderr) == (
        130, "", "tapcheck: interrupted\n")


def test_the_entry_point_runs_the_command_line():
    result = subprocess.run([sys.executable, "-m", "tapcheck", "--version"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, f"tapcheck, version {__version__}\n"), result


def test_an_ignored_ctrl_c_stays_ignored_while_loading():
    """A background job of a script (`tapcheck train … &`) ignores Ctrl-C; the loading handler
    replaced that, and the foreground's Ctrl-C stopped the job (review)."""
    script = INTERRUPTED_LOADING.replace("import tapcheck.entry",
                                         "import tapcheck.entry\nsignal.signal(signal.SIGINT, "
                                         "signal.SIG_IGN)")
    result = subprocess.run([sys.executable, "-c", script, "--version"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, f"tapcheck, version {__version__}\n"), result
