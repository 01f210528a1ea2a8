"""Input devices through PortAudio and a real PulseAudio server; clear errors without them."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tapcheck.errors import DeviceError

from .conftest import ROOT


def _tapcheck(*args, env=None, code=None):
    """Run ``python -m tapcheck`` (optionally after some Python ``code``) in a fresh process."""
    prog = (code or "") + ("\nimport sys\nfrom tapcheck.cli import main\n"
                           "sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", prog, *map(str, args)], capture_output=True,
                          text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_without_portaudio_every_device_command_says_what_to_install():
    # The library lookup fails the way it does on a machine without libportaudio2 installed.
    hide = ("import ctypes.util\nfind = ctypes.util.find_library\n"
            "ctypes.util.find_library = lambda name: None if 'portaudio' in name else find(name)")
    for args in (["devices"], ["record", "--board", "1", "--side", "left", "--yes"],
                 ["listen", "--model", "nowhere.pt"]):
        result = _tapcheck(*args, code=hide)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr
        if args[0] == "listen":  # the model is checked first: no microphone needed to see that
            assert "nowhere.pt" in lines[0]
        else:
            assert lines[0].startswith("tapcheck: error: PortAudio is not available")
            assert "apt-get install libportaudio2" in lines[0]


def test_commands_without_a_microphone_never_load_portaudio(tiny_dataset):
    code = ("import sys\nfrom tapcheck.cli import main\n"
            f"main(['info', {str(tiny_dataset.root)!r}])\n"
            "main(['log'])\n"
            "assert 'sounddevice' not in sys.modules, 'sounddevice was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert result.returncode == 0, result.stderr


def test_no_input_device_is_one_line():
    if Path("/dev/snd").exists():
        pytest.skip("this machine has sound hardware; the test needs one without (like CI)")
    # no sound hardware and no sound server reachable: PortAudio sees no input at all
    result = _tapcheck("devices", env={"PULSE_SERVER": "unix:/nonexistent/socket"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "tapcheck: error: no audio input device found — plug in a microphone (USB microphones "
        "need no driver); with PulseAudio or PipeWire, check it is running, and Debian's "
        "libasound2-plugins lets PortAudio (libportaudio2) reach it")


def test_devices_lists_the_pulse_input(pulse):
    result = _tapcheck("devices")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["index", "name", "channels", "default", "rate", "host", "API"]
    row = next(line.split() for line in lines[1:] if "pulse" in line.split())
    assert row[-5] == "pulse" and int(row[-4]) >= 1 and row[-3:] == ["44100", "Hz", "ALSA"]
    assert sum(line.startswith("*") for line in lines[1:]) == 1  # one default


def test_find_input_device_by_index_and_name(pulse):
    from tapcheck.devices import find_input_device, input_devices

    devices = input_devices()
    pulse_dev = next(d for d in devices if d.name == "pulse")
    assert find_input_device("pulse") == pulse_dev  # exact name wins over "pulse..." names
    assert find_input_device(str(pulse_dev.index)) == pulse_dev
    assert find_input_device(pulse_dev.index) == pulse_dev
    assert find_input_device("PULS") == pulse_dev  # part of a name, any case
    assert find_input_device(None).is_default
    with pytest.raises(DeviceError, match="no input device named like 'usb-mic-42'") as e:
        find_input_device("usb-mic-42")
    assert "pulse" in str(e.value) and "tapcheck devices" in str(e.value)
    with pytest.raises(DeviceError, match="no input device with index 999"):
        find_input_device("999")
    for digit in ("²", "٣"):  # digits to str.isdigit that int() refuses: a traceback (QA)
        with pytest.raises(DeviceError, match=f"no input device named like '{digit}'"):
            find_input_device(digit)
    shared = "e"  # in "pulse" and "default"
    with pytest.raises(DeviceError, match=f"'{shared}' matches [0-9]+ input devices") as e:
        find_input_device(shared)
    assert "pass the index instead" in str(e.value)
    for empty in ("", "  "):  # an unset variable in a script: it recorded from the default (QA)
        with pytest.raises(DeviceError, match="--device is empty: it names no input device"):
            find_input_device(empty)


def test_sample_rate_choice(pulse):
    from tapcheck.devices import choose_samplerate, find_input_device

    dev = find_input_device("pulse")
    assert choose_samplerate(dev, sr=44100) == 44100
    assert choose_samplerate(dev, sr=44100, device_sr=48000) == 48000
    with pytest.raises(DeviceError, match="cannot record at 1234567 Hz"):
        choose_samplerate(dev, sr=44100, device_sr=1234567)


def test_microphone_records_what_is_played(pulse, tmp_path):
    """A tone played into the null sink arrives through PortAudio, at the rate asked for."""
    import soundfile as sf

    from tapcheck.devices import Microphone, find_input_device

    sr = 44100
    t = np.arange(int(0.3 * sr)) / sr
    tone = np.zeros(int(1.0 * sr), np.float32)
    tone[int(0.3 * sr):int(0.6 * sr)] = 0.25 * np.sin(2 * np.pi * 1000 * t)
    sf.write(tmp_path / "tone.wav", tone, sr)
    for rate in (44100, 48000):
        with Microphone(find_input_device("pulse"), sr=rate) as mic:
            mic.wait_ready()
            mic.drain()
            player = pulse.play(tmp_path / "tone.wav")
            y = mic.record(int(1.5 * rate))
            player.wait(timeout=10)
        assert mic.sr == rate
        loud = np.flatnonzero(np.abs(y) > 0.1)
        assert len(loud), "the tone never arrived"
        assert abs((loud[-1] - loud[0]) / rate - 0.3) < 0.01  # the tone's length, at this rate
        # its pitch, at this rate: 1 kHz
        spectrum = np.abs(np.fft.rfft(y[loud[0]:loud[0] + rate // 5]))
        assert abs(np.argmax(spectrum) * 5 - 1000) <= 10


def test_a_device_falling_back_to_a_rate_too_slow_for_the_crops_is_refused(pulse):
    """With ``device_sr = 0`` a device that cannot record at 44.1 kHz is recorded at its own rate;
    below the rate the crops need (8614 Hz at the study's settings) that rate is refused, as
    ``judge`` refuses such a file, instead of judging bands that hold nothing. A device index
    PortAudio does not know cannot record at 44.1 kHz, so the fallback is taken for real."""
    from tapcheck.devices import InputDevice, choose_samplerate

    def device(own_sr):
        return InputDevice(index=10_000, name="phone headset", channels=1, default_sr=own_sr,
                           hostapi="ALSA", is_default=False)

    assert choose_samplerate(device(16000.0), sr=44100, min_sr=8613.3) == 16000
    with pytest.raises(DeviceError) as e:
        choose_samplerate(device(8000.0), sr=44100, min_sr=8613.3)
    assert str(e.value) == (
        "'phone headset' cannot record at 44100 Hz and its own rate, 8000 Hz, records sound "
        "up to 4000 Hz only; tapcheck listens up to 4307 Hz — choose another microphone "
        "(`tapcheck devices`), or set stream.device_sr to a rate of at least 8614 Hz that it "
        "has")
    assert choose_samplerate(device(8000.0), sr=44100) == 8000  # without a floor: the old choice
