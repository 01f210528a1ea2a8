"""C libraries' lines on standard error (tapcheck/c_stderr.py)."""

import os
import subprocess
import sys
import threading

import pytest

from tapcheck.c_stderr import portaudio_lines_dropped

PORTAUDIO = b"Expression 'ret' failed in 'src/hostapi/alsa/pa_linux_alsa.c', line: 3665\n"


def test_portaudio_lines_are_dropped_from_any_thread_and_the_rest_pass_in_order(capfd):
    capfd.readouterr()
    with portaudio_lines_dropped():
        os.write(2, PORTAUDIO)
        os.write(2, b"ALSA lib pcm_pulse.c:758:(pulse_prepare) PulseAudio: Unable to create "
                    b"stream: No such entity\n\n")  # ALSA's line and its blank line
        os.write(2, b"ALSA lib pcm.c: something else\n")
        thread = threading.Thread(target=os.write, args=(2, PORTAUDIO))  # PortAudio's thread
        thread.start()
        thread.join()
        print("a warning", file=sys.stderr)
        os.write(2, b"progress 50%\r")  # no newline: not held back
    err = capfd.readouterr().err
    # Python's own line goes straight to the real standard error (its order with standard
    # output's lines is what is kept), the C library's through the pipe and its thread: where
    # it falls among them is not fixed (a fresh-clone CI run got it first)
    assert err.count("a warning\n") == 1
    assert err.replace("a warning\n", "", 1) == "ALSA lib pcm.c: something else\nprogress 50%\r"
    print("after", file=sys.stderr)  # and the descriptor is back
    assert capfd.readouterr().err == "after\n"


def test_debug_shows_them(capfd):
    capfd.readouterr()
    with portaudio_lines_dropped(drop=False):
        os.write(2, PORTAUDIO)
    assert capfd.readouterr().err == PORTAUDIO.decode()


ORDER = """
import os, sys
from tapcheck.c_stderr import portaudio_lines_dropped
with portaudio_lines_dropped():
    for k in range(50):
        print(f"out {k}", flush=True)
        print(f"err {k}", file=sys.stderr)
        os.write(2, b"Expression 'x' failed in 'src/hostapi/alsa/pa_linux_alsa.c', line: 1\\n")
print("after", file=sys.stderr)
"""


def test_pythons_own_lines_keep_their_order_with_standard_output():
    """Through the pipe, Python's warnings came out of order with standard output's verdicts
    (200 of 400 lines, 2>&1), and two lines could merge into one (review)."""
    result = subprocess.run([sys.executable, "-c", ORDER], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        line for k in range(50) for line in (f"out {k}", f"err {k}")] + ["after"]


def test_descriptor_2_comes_back_when_the_block_is_interrupted(capfd):
    capfd.readouterr()
    with pytest.raises(KeyboardInterrupt), portaudio_lines_dropped():
        raise KeyboardInterrupt
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"
