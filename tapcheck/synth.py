"""A physics-based synthetic tap-test rig: the study's boards, without a microphone.

The board is a free rectangular plate of orthotropic wood. Its modes come from a Rayleigh-Ritz
solution of Kirchhoff plate bending,

    U = 1/2 ∫∫ s(x, y) [D1 w_xx² + 2 D12 w_xx w_yy + D2 w_yy² + 4 D66 w_xy²] dA,
    T = 1/2 ρ h ∫∫ ẇ² dA,

on a basis of products of free-free beam functions (Warburton's choice), evaluated on a grid. A
crack or saw cut is a narrow band where the stiffness field ``s`` drops: the eigenproblem itself
then shifts and re-shapes the modes near it. Friction between the crack faces adds damping to each
mode in proportion to the share of its strain energy stored at the crack, and the faces clap
("clatter") when the board is struck close to them.

A take is the modal impulse response at the strike point, driven by a half-sine contact force of
0.25-1 ms (longer near a crack, as in the coin-tap test), radiated by the Rayleigh integral of the
plate lying on a bench (a baffle) to a cheap microphone at a random spot in a small room with
background noise and mains hum. Everything random is drawn from a generator seeded by (seed,
board, side, take): a dataset is the same for the same seed.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import scipy.signal

from .plate import Board, BoardSpec, Defect, Modes, Wood, draw_specimen, plate_modes

__all__ = ["Board", "BoardSpec", "Defect", "Modes", "Wood", "plate_modes", "synthesize_tap",
           "study_boards", "take_rng"]

# -- one take -------------------------------------------------------------------------------------

def synthesize_tap(board: Board, side: str, *, rng: np.random.Generator, sr: int = 44100,
                   duration_s: float = 3.0, support_damping: float = 15.0,
                   noise: bool = True) -> np.ndarray:
    """One recorded tap of a board struck near its ``side`` end ("left" or "right").

    Parameters
    ----------
    board : Board
    side : {"left", "right"}
    rng : np.random.Generator
        Source of every random choice: strike point, force, contact time, strike time, microphone
        distance and orientation, noise.
    sr : int
    duration_s : float
    support_damping : float
        Decay rate added to every mode by whatever holds the board (a hand, a felt pad), 1/s.
    noise : bool
        False leaves out the background noise and hum, every random draw else the same: the
        tap's own ringing, as ground truth for what is read off a take with them
        (scripts/explain_decay_truth.py).

    Returns
    -------
    y : np.ndarray, shape (round(sr * duration_s),), float32
        Peak level between about -20 and -3 dBFS, like a take at a bench.
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', not {side!r}")
    modes = plate_modes(board)
    n = int(round(sr * duration_s))
    a, b = board.length_m, board.width_m

    x_s, y_s, contact_s, proximity, force = _strike(board, side, rng=rng)

    # Modal impulse responses at the microphone. Mass-normalised modes respond to a unit impulse at
    # the strike point with acceleration φ_k(x_s) ω_k e^{-σt} sin(ω_k t); each radiates to the
    # microphone through the Rayleigh integral, which carries its own amplitude and phase.
    omega = 2.0 * np.pi * modes.freqs_hz
    mic = np.array([a * rng.uniform(0.2, 0.8), b * rng.uniform(-1.0, 2.0), rng.uniform(0.15, 0.4)])
    transfer = modes.pressure_at(mic)
    gains = modes.shapes_at(x_s, y_s) * omega * np.abs(transfer)
    phases = np.angle(transfer)
    # Decay: material and crack losses (σ = π f η) plus the hand or felt the board rests on.
    sigma = np.pi * modes.freqs_hz * modes.loss_factors + support_damping
    pulse_t = np.arange(max(2, int(round(contact_s * sr)))) / sr
    contact = np.sin(np.pi * pulse_t / contact_s)  # half-sine contact force
    tap = _modal_response(contact, omega, sigma, gains, phases, sr=sr,
                          n_samples=int(min(duration_s, 1.5) * sr))
    # The stick's own click: the force pulse's derivative, heard directly, broadband.
    click = np.gradient(contact) * rng.uniform(0.05, 0.15) * np.abs(tap).max() / np.abs(
        np.gradient(contact)).max()
    tap[: len(click)] += click

    if board.defect is not None:
        tap += _clatter(board, proximity, tap, rng=rng, sr=sr, force=force)

    tap *= force
    y = np.zeros(n)
    onset = int(rng.uniform(0.15, max(0.2, duration_s - 0.6)) * sr)  # strike time in the clip
    m = min(len(tap), n - onset)
    y[onset:onset + m] = tap[:m]
    return _microphone(y, rng=rng, sr=sr, force=force, distance=float(np.linalg.norm(
        mic - [x_s, y_s, 0.0])), noise=noise)


def _strike(board: Board, side: str, *, rng: np.random.Generator
            ) -> tuple[float, float, float, float, float]:
    """Where the stick strikes (x, y in m), its contact time (s), how close that is to the crack
    (0-1), and the strike's force (relative)."""
    a, b = board.length_m, board.width_m
    # The stick strikes near one end, somewhere across the width.
    end = rng.uniform(0.03, 0.12)
    x_s = a * (end if side == "left" else 1.0 - end)
    y_s = b * rng.uniform(0.15, 0.85)
    # Contact time, log-uniform 0.25-1 ms: the hard end of a stick's ~0.5-2 ms, as the study's
    # stick is a hard-tipped inspection stick (a softer strike only darkens the sound further).
    contact_s = np.exp(rng.uniform(np.log(0.25e-3), np.log(1.0e-3)))
    # Coin-tap mechanics (Cawley & Adams 1988): near a crack the board is locally softer, so the
    # stick stays in contact longer and the strike carries fewer high frequencies: a dull tap.
    proximity = _crack_proximity(board, x_s, y_s)
    if board.defect is not None:
        contact_s *= 1.0 + 2.5 * board.defect.stiffness_loss * proximity
    return x_s, y_s, contact_s, proximity, rng.lognormal(0.0, 0.35)


def _modal_response(force: np.ndarray, omega: np.ndarray, sigma: np.ndarray, gains: np.ndarray,
                    phases: np.ndarray, *, sr: int, n_samples: int) -> np.ndarray:
    """Σ_k g_k (force * e^{-σ_k t} sin(ω_k t + φ_k)), each mode an exact 2-pole resonator.

    Impulse invariance: h[n] = Im(e^{iφ} p^n) with p = e^{(-σ + iω)/sr} has the transfer function
    (sin φ - r sin(φ - ω/sr) z⁻¹) / (1 - 2 r cos(ω/sr) z⁻¹ + r² z⁻²), r = |p|; filtering the force
    with it is the convolution, at O(n) per mode.
    """
    drive = np.zeros(n_samples)
    drive[: len(force)] = force[:n_samples]
    out = np.zeros(n_samples)
    r = np.exp(-sigma / sr)
    for g, w, rk, phi in zip(gains, omega / sr, r, phases, strict=True):
        out += g * scipy.signal.lfilter([np.sin(phi), -rk * np.sin(phi - w)],
                                        [1.0, -2.0 * rk * np.cos(w), rk * rk], drive)
    return out


def _crack_proximity(board: Board, x_s: float, y_s: float) -> float:
    """1 when striking on the crack, falling off over ~5 cm; 0 for a sound board."""
    d = board.defect
    if d is None:
        return 0.0
    cx = d.x * board.length_m
    cy = 0.5 * (d.y_from + d.y_to) * board.width_m
    return float(np.exp(-np.hypot(x_s - cx, y_s - cy) / 0.05))


def _clatter(board: Board, proximity: float, tap: np.ndarray, *, rng: np.random.Generator,
             sr: int, force: float) -> np.ndarray:
    """Crack faces clapping after the strike: short broadband bursts, louder near the crack."""
    d = board.defect
    out = np.zeros_like(tap)
    n_bursts = rng.poisson(1.0 + 6.0 * proximity * min(force, 2.0))
    level = d.clatter * (0.04 + 0.25 * proximity) * np.abs(tap).max()
    sos = scipy.signal.butter(2, [800.0, 6000.0], btype="bandpass", fs=sr, output="sos")
    for _ in range(n_bursts):
        start = int(rng.uniform(0.3e-3, 25e-3) * sr)
        length = int(rng.uniform(0.3e-3, 1.5e-3) * sr)
        burst = scipy.signal.sosfilt(sos, rng.standard_normal(length)) * np.exp(
            -np.arange(length) / (0.3 * length))
        burst *= level * rng.uniform(0.3, 1.0) / (np.abs(burst).max() + 1e-12)
        out[start:start + length] += burst[: len(out) - start]
    return out


def _microphone(y: np.ndarray, *, rng: np.random.Generator, sr: int, force: float,
                distance: float, noise: bool = True) -> np.ndarray:
    """A cheap USB microphone ``distance`` m from the strike in a small room: level, room, band
    limit, noise, hum (the last two left out if not ``noise``; they are drawn last)."""
    # Room: the direct sound, a table reflection, and a short diffuse tail (RT60 0.15-0.35 s).
    rt60 = rng.uniform(0.15, 0.35)
    ir_len = int(0.12 * sr)
    tail_t = np.arange(ir_len) / sr
    ir = rng.standard_normal(ir_len) * np.exp(-6.9 * tail_t / rt60) * 0.004
    ir[0] = 1.0
    ir[int(rng.uniform(1e-3, 3e-3) * sr)] += rng.uniform(0.3, 0.6)
    y = scipy.signal.fftconvolve(y, ir)[: len(y)]
    # Cheap capsule: high-pass at ~80 Hz, low-pass at ~12 kHz.
    sos = scipy.signal.butter(2, [80.0, 12000.0], btype="bandpass", fs=sr, output="sos")
    y = scipy.signal.sosfilt(sos, y)
    # Level: -9 dBFS at 25 cm for an average strike, falling 6 dB per doubling of distance.
    peak_db = -9.0 + 20.0 * np.log10(force) - 20.0 * np.log10(distance / 0.25)
    y *= 10.0 ** (min(peak_db, -2.0) / 20.0) / (np.abs(y).max() + 1e-12)
    if not noise:
        return y.astype(np.float32)
    n = len(y)
    t = np.arange(n) / sr
    noise_dbfs = rng.uniform(-66.0, -58.0)
    hiss = _pink_noise(n, rng) * 10.0 ** (noise_dbfs / 20.0)
    mains = 50.0 if rng.random() < 0.5 else 60.0
    hum_amp = 10.0 ** (rng.uniform(-70.0, -60.0) / 20.0)
    hum = hum_amp * (np.sin(2 * np.pi * mains * t + rng.uniform(0, 2 * np.pi))
                     + 0.5 * np.sin(2 * np.pi * 3 * mains * t + rng.uniform(0, 2 * np.pi)))
    return (y + hiss + hum).astype(np.float32)


def _pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS 1/f noise, shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=float)
    spectrum /= np.sqrt(np.maximum(f, 1.0))
    pink = np.fft.irfft(spectrum, n)
    return pink / (pink.std() + 1e-12)


# -- the study's boards ---------------------------------------------------------------------------

def study_boards(*, seed: int = 0) -> list[BoardSpec]:
    """The boards of the study (``../shared/domain.md``), with per-board material scatter.

    - 1-4: normal, training (1: 13 x 20 cm, 3: 13 x 21.5 cm as in the study; 2: 19 cm and 4:
      20.5 cm, so that no size is peculiar to the defective boards);
      the last takes of each are held out for the test split.
    - 5, 6: one cracked board (13 x 19 cm) struck at its left (5) and right (6) end; training.
    - 7, 8: one board (13 x 20 cm) with a saw cut near its right end, struck at the left (7) and
      right (8) end; held out.
    - 11-13: normal boards of a similar but slightly different wood (13 x 19 / 19 / 20 cm);
      held out.
    """
    rng = np.random.default_rng([seed, 7919])
    lot = Wood()
    similar = dataclasses.replace(  # same species, another lot: a little denser and stiffer
        lot, density=lot.density * 1.05, e_long=lot.e_long * 1.04, e_cross=lot.e_cross * 1.04)

    specimen = functools.partial(draw_specimen, rng)

    both = ("left", "right")
    cracked = specimen(19.0, lot, Defect(x=0.42, y_from=0.0, y_to=0.55, stiffness_loss=0.9,
                                         friction=12.0, clatter=1.0))
    sawn = specimen(20.0, lot, Defect(x=0.84, y_from=1.0, y_to=0.5, stiffness_loss=0.95,
                                      friction=6.0, clatter=0.5))
    return [
        BoardSpec(1, specimen(20.0, lot), both, "normal", "reference", "train"),
        BoardSpec(2, specimen(19.0, lot), both, "normal", "reference", "train"),
        BoardSpec(3, specimen(21.5, lot), both, "normal", "reference", "train"),
        BoardSpec(4, specimen(20.5, lot), both, "normal", "reference", "train"),
        BoardSpec(5, cracked, ("left",), "defect", "defect", "train"),
        BoardSpec(6, cracked, ("right",), "defect", "defect", "train"),
        BoardSpec(7, sawn, ("left",), "defect", "defect-held-out", "test"),
        BoardSpec(8, sawn, ("right",), "defect", "defect-held-out", "test"),
        BoardSpec(11, specimen(19.0, similar), both, "normal", "similar-material", "test"),
        BoardSpec(12, specimen(19.0, similar), both, "normal", "similar-material", "test"),
        BoardSpec(13, specimen(20.0, similar), both, "normal", "similar-material", "test"),
    ]


def take_rng(seed: int, board: int, side: str, take: int) -> np.random.Generator:
    """The generator of one take: independent of every other take, same for the same seed."""
    return np.random.default_rng([seed, board, 0 if side == "left" else 1, take])
