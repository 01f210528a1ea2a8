"""The power spectrogram: equal to librosa's, whole or frame by frame, its frames' power."""

import numpy as np
import pytest

from tapcheck.spectrogram import (frame_power, power_spectrogram, power_spectrogram_frames,
                                  power_to_db)


def test_power_spectrogram_equals_librosa():
    import librosa

    y = np.random.default_rng(0).standard_normal(44100).astype(np.float32)
    ours = power_spectrogram(y, n_fft=1024, hop_length=128)
    ref = np.abs(librosa.stft(y, n_fft=1024, hop_length=128)) ** 2
    assert ours.shape == ref.shape == (513, 345)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * ref.max())
    np.testing.assert_allclose(power_to_db(ours), librosa.power_to_db(ref), atol=1e-2)


@pytest.mark.parametrize(("n_fft", "hop_length", "n"), [
    (1024, 128, 44100), (1024, 128, 1000), (1024, 128, 130), (512, 512, 3001), (1000, 96, 5000)])
def test_frame_power_is_the_spectrograms_frame_sum(n_fft, hop_length, n):
    y = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    S = power_spectrogram(y, n_fft=n_fft, hop_length=hop_length)
    np.testing.assert_allclose(frame_power(y, n_fft=n_fft, hop_length=hop_length),
                               S.sum(axis=0, dtype=np.float64), rtol=1e-5)


@pytest.mark.parametrize(("start", "stop"), [(0, 1), (0, 126), (100, 226), (219, 345), (344, 345)])
def test_spectrogram_frames_are_the_whole_spectrograms(start, stop):
    y = np.random.default_rng(start).standard_normal(44100).astype(np.float32)
    np.testing.assert_array_equal(power_spectrogram_frames(y, start, stop),
                                  power_spectrogram(y)[:, start:stop])
