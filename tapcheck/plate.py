"""The board of the synthetic rig: a free orthotropic plate, its modes, and a crack in it.

Its modes come from a Rayleigh-Ritz solution of Kirchhoff plate bending,

    U = 1/2 ∫∫ s(x, y) [D1 w_xx² + 2 D12 w_xx w_yy + D2 w_yy² + 4 D66 w_xy²] dA,
    T = 1/2 ρ h ∫∫ ẇ² dA,

on a basis of products of free-free beam functions (Warburton's choice), evaluated on a grid. A
crack or saw cut is a narrow band where the stiffness field ``s`` drops: the eigenproblem itself
then shifts and re-shapes the modes near it. :mod:`tapcheck.synth` turns the modes into takes.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np
import scipy.linalg

SPEED_OF_SOUND = 343.0  # m/s, air at 20 °C

# Free-free beam eigenvalues λ_k (cos λ cosh λ = 1); beyond these, (k + 1/2) π is exact to 1e-7.
_BEAM_LAMBDAS = (4.730040745, 7.853204624, 10.995607838, 14.137165491, 17.278759657)


@dataclass(frozen=True)
class Wood:
    """Elastic and damping constants of a wood (SI units). Defaults: a light softwood."""

    density: float = 480.0  # kg/m³
    e_long: float = 10.0e9  # Pa, along the grain (the board's length)
    e_cross: float = 0.80e9  # Pa, across the grain
    g_shear: float = 0.65e9  # Pa, in-plane shear
    poisson: float = 0.37  # ν along → across
    loss_factor: float = 0.011  # η: modal decay rate σ = π f η


@dataclass(frozen=True)
class Defect:
    """A crack or saw cut running across the grain from one long edge.

    Positions are fractions of the board: ``x`` along the length (0 = left end, 1 = right end),
    ``y_from``-``y_to`` across the width.
    """

    x: float
    y_from: float
    y_to: float
    stiffness_loss: float = 0.85  # fraction of bending stiffness lost inside the cut
    width_m: float = 0.004  # width of the weakened band
    friction: float = 6.0  # extra loss factor, per unit share of strain energy at the crack
    clatter: float = 1.0  # loudness of crack-face clatter, relative


@dataclass(frozen=True)
class Board:
    """One physical specimen."""

    length_m: float
    width_m: float
    thickness_m: float
    wood: Wood
    defect: Defect | None = None


@dataclass(frozen=True)
class BoardSpec:
    """A board number of the study: a specimen, the end it is struck at, its label and role."""

    number: int
    board: Board
    sides: tuple[str, ...]
    label: str  # "normal" or "defect"
    group: str  # free text: "reference", "defect", "similar-material"
    split: str  # "train" or "test"; normal training boards hold out some takes for testing


@dataclass(frozen=True)
class Modes:
    """Modal model of a board, from :func:`plate_modes`."""

    freqs_hz: np.ndarray  # (n_modes,)
    coeffs: np.ndarray  # (n_basis, n_modes) mass-normalised eigenvectors in the beam basis
    loss_factors: np.ndarray  # (n_modes,) material + crack friction
    crack_share: np.ndarray  # (n_modes,) share of strain energy in the cracked band
    surface_xy: np.ndarray  # (n_points, 2) a coarse grid on the plate for the radiation integral, m
    surface_shapes: np.ndarray  # (n_points, n_modes) mode shapes on that grid
    surface_da: float  # area of one grid cell, m²
    n_x: int  # basis size along the length
    n_y: int  # basis size across the width
    coincidence_hz: float  # where bending waves along the grain travel at the speed of sound

    def pressure_at(self, mic_xyz: np.ndarray) -> np.ndarray:
        """Complex sound pressure per unit modal acceleration at a point above the plate.

        Rayleigh's integral for a plate in a rigid baffle (the bench it lies on),
        p = ρ0 / 2π ∫ ẅ e^{-ikR} / R dA, with ρ0 dropped (levels are normalised later).

        Parameters
        ----------
        mic_xyz : np.ndarray, shape (3,)
            Microphone position in m; the plate spans [0, length] x [0, width] at z = 0.

        Returns
        -------
        np.ndarray, shape (n_modes,), complex
        """
        r = np.sqrt(((self.surface_xy - mic_xyz[:2]) ** 2).sum(axis=1) + mic_xyz[2] ** 2)
        k = 2.0 * np.pi * self.freqs_hz / SPEED_OF_SOUND
        kernel = np.exp(-1j * np.outer(r, k)) / r[:, None]  # (n_points, n_modes)
        return (kernel * self.surface_shapes).sum(axis=0) * self.surface_da / (2.0 * np.pi)
    length_m: float
    width_m: float

    def shapes_at(self, x_m: float, y_m: float) -> np.ndarray:
        """Mode shapes at a point, shape (n_modes,)."""
        bx = _beam_basis(np.array([x_m / self.length_m]), self.n_x)[0][:, 0]
        by = _beam_basis(np.array([y_m / self.width_m]), self.n_y)[0][:, 0]
        return np.kron(bx, by) @ self.coeffs


# -- the plate ------------------------------------------------------------------------------------

def _beam_basis(xi: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Free-free beam functions on [0, 1]: values, 1st and 2nd derivatives, each (n, len(xi)).

    Function 0 is translation, 1 is rotation, the rest the elastic beam modes, written in a form
    that stays exact for large λ (cosh z - σ sinh z = e^-z + (1 - σ) sinh z).
    """
    phi, d1, d2 = np.zeros((n, xi.size)), np.zeros((n, xi.size)), np.zeros((n, xi.size))
    phi[0] = 1.0
    if n > 1:
        phi[1], d1[1] = np.sqrt(3.0) * (2.0 * xi - 1.0), 2.0 * np.sqrt(3.0)
    for i in range(2, n):
        k = i - 2
        lam = _BEAM_LAMBDAS[k] if k < len(_BEAM_LAMBDAS) else (k + 1.5) * np.pi
        one_minus_sigma = (np.cos(lam) - np.sin(lam) - np.exp(-lam)) / (np.sinh(lam) - np.sin(lam))
        sigma = 1.0 - one_minus_sigma
        z = lam * xi
        ch = np.exp(-z) + one_minus_sigma * np.sinh(z)  # cosh z - σ sinh z
        sh = -np.exp(-z) + one_minus_sigma * np.cosh(z)  # sinh z - σ cosh z
        phi[i] = ch + np.cos(z) - sigma * np.sin(z)
        d1[i] = lam * (sh - np.sin(z) - sigma * np.cos(z))
        d2[i] = lam ** 2 * (ch - np.cos(z) + sigma * np.sin(z))
    return phi, d1, d2


@functools.lru_cache(maxsize=64)
def plate_modes(board: Board, *, n_x: int = 10, n_y: int = 8, grid: tuple[int, int] = (120, 80),
                fmax_hz: float = 12000.0) -> Modes:
    """Solve the Rayleigh-Ritz eigenproblem of a free orthotropic plate.

    Parameters
    ----------
    board : Board
    n_x, n_y : int
        Beam functions along the length and across the width (the basis has n_x * n_y functions).
    grid : (int, int)
        Quadrature points along the length and the width (midpoint rule).
    fmax_hz : float
        Modes above this are dropped.

    Returns
    -------
    Modes
        The elastic modes (rigid-body modes removed), lowest first.
    """
    a, b, h, w = board.length_m, board.width_m, board.thickness_m, board.wood
    d1, d2, d12, d66 = _rigidities(w, h)

    xi = (np.arange(grid[0]) + 0.5) / grid[0]
    eta = (np.arange(grid[1]) + 0.5) / grid[1]
    px, px1, px2 = _beam_basis(xi, n_x)
    py, py1, py2 = _beam_basis(eta, n_y)
    # Basis functions on the grid: rows = grid points (x-major), columns = basis (x-major).
    def outer(fx, fy):
        return np.einsum("ip,jq->pqij", fx, fy).reshape(grid[0] * grid[1], n_x * n_y)
    val = outer(px, py)
    wxx, wyy, wxy = outer(px2, py) / a ** 2, outer(px, py2) / b ** 2, outer(px1, py1) / (a * b)
    dA = a * b / (grid[0] * grid[1])

    crack = _crack_field(board, xi, eta)  # 0 outside the cut, up to 1 inside (x-major, flat)
    s = 1.0 - (board.defect.stiffness_loss * crack if board.defect else 0.0)

    def energy(weight):
        return (d1 * wxx.T @ (weight[:, None] * wxx) + d2 * wyy.T @ (weight[:, None] * wyy)
                + d12 * (wxx.T @ (weight[:, None] * wyy) + wyy.T @ (weight[:, None] * wxx))
                + 4.0 * d66 * wxy.T @ (weight[:, None] * wxy)) * dA

    stiffness = energy(s * np.ones(val.shape[0]))
    mass = w.density * h * (val.T @ val) * dA
    eigvals, vecs = scipy.linalg.eigh(stiffness, mass)
    freqs = np.sqrt(np.maximum(eigvals, 0.0)) / (2.0 * np.pi)
    keep = (freqs > 20.0) & (freqs < fmax_hz)  # drops the three rigid-body modes
    freqs, vecs = freqs[keep], vecs[:, keep]

    if board.defect is not None:
        at_crack = np.einsum("ik,ij,jk->k", vecs, energy(s * crack), vecs)
        total = np.einsum("ik,ij,jk->k", vecs, stiffness, vecs)
        share = at_crack / total
    else:
        share = np.zeros_like(freqs)
    loss = _loss_factors(board, freqs, share)

    # A coarser grid is enough for the radiation integral: 5 mm cells, λ/4 at 17 kHz.
    cx, cy = np.arange(40) + 0.5, np.arange(26) + 0.5
    surface = np.kron(_beam_basis(cx / 40, n_x)[0].T, _beam_basis(cy / 26, n_y)[0].T) @ vecs
    surface_xy = np.stack(np.meshgrid(cx / 40 * a, cy / 26 * b, indexing="ij"), -1).reshape(-1, 2)
    return Modes(freqs_hz=freqs, coeffs=vecs, loss_factors=loss, crack_share=share,
                 surface_xy=surface_xy, surface_shapes=surface, surface_da=a * b / surface.shape[0],
                 n_x=n_x, n_y=n_y, length_m=a, width_m=b,
                 coincidence_hz=SPEED_OF_SOUND ** 2 / (2.0 * np.pi) * np.sqrt(w.density * h / d1))


def _rigidities(w: Wood, h: float) -> tuple[float, float, float, float]:
    """Bending rigidities D1, D2, D12, D66 (N m) of an orthotropic plate ``h`` m thick."""
    nu_cross = w.poisson * w.e_cross / w.e_long  # reciprocity: ν_21 = ν_12 E_2 / E_1
    denom = 12.0 * (1.0 - w.poisson * nu_cross)
    d1, d2 = w.e_long * h ** 3 / denom, w.e_cross * h ** 3 / denom
    return d1, d2, nu_cross * d1, w.g_shear * h ** 3 / 12.0


def _loss_factors(board: Board, freqs: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Each mode's loss factor: the wood's, growing slowly with frequency, plus the crack's
    friction in proportion to the mode's share of strain energy at the crack."""
    friction = board.defect.friction if board.defect else 0.0
    material = board.wood.loss_factor * (1.0 + 0.15 * np.log2(np.maximum(freqs, 100.0) / 1000.0))
    return material + friction * share


def _crack_field(board: Board, xi: np.ndarray, eta: np.ndarray) -> np.ndarray:
    d = board.defect
    if d is None:
        return np.zeros(xi.size * eta.size)
    along = np.exp(-0.5 * ((xi - d.x) * board.length_m / (d.width_m / 2.0)) ** 2)
    lo, hi = min(d.y_from, d.y_to), max(d.y_from, d.y_to)
    edge = 0.01  # soft ends of the cut, as a fraction of the width
    across = 1.0 / ((1.0 + np.exp(-(eta - lo) / edge)) * (1.0 + np.exp((eta - hi) / edge)))
    return np.outer(along, across).ravel()


def draw_specimen(rng: np.random.Generator, length_cm: float, wood: Wood,
                  defect: Defect | None = None) -> Board:
    """One board cut from ``wood``: 13 cm wide, ~6 mm thick, each property scattered by ~3 %
    from board to board (thickness ~2 %), as boards of one delivery differ."""
    scatter = lambda: rng.lognormal(0.0, 0.03)  # noqa: E731 - board-to-board scatter, ~3 %
    return Board(
        length_m=length_cm / 100.0, width_m=0.13, thickness_m=0.006 * rng.lognormal(0, 0.02),
        wood=dataclasses.replace(
            wood, density=wood.density * scatter(), e_long=wood.e_long * scatter(),
            e_cross=wood.e_cross * scatter(), g_shear=wood.g_shear * scatter(),
            loss_factor=wood.loss_factor * scatter()),
        defect=defect)
