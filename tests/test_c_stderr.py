"""C libraries' lines on standard error (tapcheck/c_stderr.py)."""

import os
import sys
import threading

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
    assert capfd.readouterr().err == "ALSA lib pcm.c: something else\na warning\nprogress 50%\r"
    print("after", file=sys.stderr)  # and the descriptor is back
    assert capfd.readouterr().err == "after\n"


def test_debug_shows_them(capfd):
    capfd.readouterr()
    with portaudio_lines_dropped(drop=False):
        os.write(2, PORTAUDIO)
    assert capfd.readouterr().err == PORTAUDIO.decode()
