#!/usr/bin/env python3
"""NumPy reference implementation of the nfcs-math-kernels algorithms.

This file mirrors the Rust crate ``crates/nfcs-math-kernels`` with plain,
vectorised NumPy (numpy + the standard library, nothing else), written the way
a competent scientist would write it. It serves two purposes:

1. a timed baseline for the benchmark documentation, so that the Rust numbers
   are compared with an honest NumPy implementation of the *same* algorithms;
2. an independent sanity check of those algorithms (``--check``).

Kernels
-------
``cgl``
    Complex Ginzburg-Landau equation on a periodic square,
    ``dA/dt = A + (1 + i b) lap(A) - (1 + i c) |A|^2 A``, pseudo-spectral
    ETDRK4 (Cox & Matthews 2002) with the contour-integral coefficients of
    Kassam & Trefethen (2005). The field is indexed ``field[y, x]``.
``kuramoto_mean_field``
    Kuramoto oscillators with all-to-all coupling ``K/N`` on
    ``z = exp(i theta)``:
    ``dz/dt = i omega z + (F |z|^2 - z^2 conj(F)) / 2`` with ``F = K mean(z)``
    (one number per stage), by integrating-factor RK4 (Lawson): classic RK4 in
    the frame rotating at each ``omega``, with the factors
    ``exp(i omega dt / 2)`` computed once, as the Rust crate does; ``z`` is
    projected back onto the unit circle after every step.
``kuramoto_dense``
    The same with a general dense real coupling matrix, ``F = W @ z``.

Usage
-----
Needs NumPy >= 2.0. ``cargo xtask bench --only math`` calls this script with
the interpreter of the virtual environment ``target/numpy-venv``::

    python3 -m venv target/numpy-venv
    target/numpy-venv/bin/pip install numpy
    script=crates/nfcs-math-kernels/reference/numpy_reference.py
    target/numpy-venv/bin/python $script --check
    target/numpy-venv/bin/python $script --seconds 1.0 --out bench.json

Options: ``--seconds S`` (time per size, default 1.0), ``--only KERNEL``
(``cgl``, ``mean_field``, ``dense``; repeatable or comma separated),
``--check`` (run the correctness checks instead of the timings),
``--out PATH`` (write the timings as JSON) and ``--serve`` (answer timing
requests, one JSON line each, on stdin: see ``serve``).

The FFTW + numba peer of the CGL solver lives beside this file
(``fftw_numba_reference.py``, needs ``pyfftw`` and ``numba``); when it can be
imported, ``--check`` runs the plane-wave checks on it too (one thread and all
threads) and checks that it follows this solver to rounding, and ``--serve``
offers it as the subjects ``fftw_1t`` and ``fftw_all``. ``cargo xtask compare
--only math`` serves this script to the ``kernels`` bench, which times the Rust
solvers and these peers interleaved, in rounds.

Timing method: every size is set up and warmed up outside the clock, then
batches of steps are timed with ``time.perf_counter`` until ``--seconds`` have
passed and at least 5 batches have run; the reported rate is the median over
batches of steps per second.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

# ---------------------------------------------------------------------------
# Complex Ginzburg-Landau, pseudo-spectral ETDRK4
# ---------------------------------------------------------------------------

#: Points on the contour of the Kassam-Trefethen coefficient integrals.
CONTOUR_POINTS = 64


def etdrk4_coefficients(n: int, length: float, dt: float, b: float):
    """The ETDRK4 arrays ``(E, E2, Q, f1, f2, f3)``, each ``(n, n)`` complex
    and indexed ``[y, x]``, for the linear operator
    ``L(k) = 1 - (1 + i b) |k|^2`` of the CGL equation on a periodic square
    of side ``length`` and the step ``dt``.

    Shared by every CGL peer (this NumPy one and ``fftw_numba_reference``),
    so they integrate with the very same coefficients.
    """
    k = 2.0 * np.pi * np.fft.fftfreq(n, d=length / n)
    ksq = k[:, None] ** 2 + k[None, :] ** 2  # kx^2 + ky^2, [y, x]
    lin = 1.0 - (1.0 + 1j * b) * ksq  # the linear operator L(k)
    h = dt

    E = np.exp(h * lin)
    E2 = np.exp(h * lin / 2.0)

    # The coefficients depend on k only through |k|^2, so evaluate the
    # M-point contour means on the distinct values of |k|^2 and scatter
    # them back: identical results, without an (n, n, M) temporary.
    ksq_unique, inverse = np.unique(ksq, return_inverse=True)
    lr = h * (1.0 - (1.0 + 1j * b) * ksq_unique)[:, None]
    # M points evenly spaced on the *whole* unit circle (angles
    # 2 pi (j - 1/2) / M, as src/cgl/phi.rs): Kassam & Trefethen's upper
    # half circle plus real part is only right for a real operator.
    r = np.exp(2j * np.pi * (np.arange(1, CONTOUR_POINTS + 1) - 0.5)
               / CONTOUR_POINTS)
    lr = lr + r[None, :]
    exp_lr = np.exp(lr)
    lr3 = lr ** 3
    # Complex operator: the mean over the full circle, not its real part.
    q = h * np.mean((np.exp(lr / 2.0) - 1.0) / lr, axis=1)
    f1 = h * np.mean((-4.0 - lr + exp_lr * (4.0 - 3.0 * lr + lr ** 2))
                     / lr3, axis=1)
    f2 = h * np.mean((2.0 + lr + exp_lr * (-2.0 + lr)) / lr3, axis=1)
    f3 = h * np.mean((-4.0 - 3.0 * lr - lr ** 2 + exp_lr * (4.0 - lr))
                     / lr3, axis=1)
    inverse = inverse.reshape(n, n)
    return E, E2, q[inverse], f1[inverse], f2[inverse], f3[inverse]


class CglEtdrk4:
    """ETDRK4 integrator for the complex Ginzburg-Landau equation.

    The state is kept in Fourier space (``self.v``); all coefficient arrays
    are computed once, in the constructor.
    """

    def __init__(self, n: int, length: float, dt: float, b: float, c: float,
                 field: np.ndarray) -> None:
        self.n = n
        self.length = length
        self.dt = dt
        self.b = b
        self.c = c
        # Coefficient of the cubic term, -(1 + i c).
        self.cubic = -(1.0 + 1j * c)

        (self.E, self.E2, self.Q, self.f1, self.f2,
         self.f3) = etdrk4_coefficients(n, length, dt, b)

        self.v = np.fft.fft2(np.asarray(field, dtype=np.complex128))

    def nonlinear(self, v: np.ndarray) -> np.ndarray:
        """``fft2(-(1 + i c) |u|^2 u)`` with ``u = ifft2(v)``."""
        u = np.fft.ifft2(v)
        intensity = u.real ** 2 + u.imag ** 2  # |u|^2 without a sqrt
        u *= intensity
        u *= self.cubic
        return np.fft.fft2(u, out=u)

    def step(self) -> None:
        """One ETDRK4 step of size ``dt``."""
        v = self.v
        nv = self.nonlinear(v)
        e2v = self.E2 * v
        a = self.Q * nv
        a += e2v
        na = self.nonlinear(a)
        b = self.Q * na
        b += e2v
        nb = self.nonlinear(b)
        c = 2.0 * nb
        c -= nv
        c *= self.Q
        c += self.E2 * a
        nc = self.nonlinear(c)
        # v <- E v + Nv f1 + 2 (Na + Nb) f2 + Nc f3
        na += nb
        na *= 2.0
        na *= self.f2
        nv *= self.f1
        nc *= self.f3
        v *= self.E
        v += nv
        v += na
        v += nc

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.step()

    def field(self) -> np.ndarray:
        """The field ``A[y, x]`` on the grid."""
        return np.fft.ifft2(self.v)


def cgl_noise(n: int, amplitude: float, seed: int) -> np.ndarray:
    """Independent complex Gaussian noise (real and imaginary parts of
    standard deviation ``amplitude``) at every grid point."""
    rng = np.random.default_rng(seed)
    parts = rng.normal(scale=amplitude, size=(n, n, 2))
    return parts.view(np.complex128)[..., 0]


# ---------------------------------------------------------------------------
# Kuramoto oscillators, RK4 on z = exp(i theta)
# ---------------------------------------------------------------------------


class Kuramoto:
    """Kuramoto network on ``z = exp(i theta)`` by integrating-factor RK4.

    ``weights=None`` gives mean-field (all-to-all ``strength/N``) coupling;
    otherwise ``weights`` is a dense real ``N x N`` matrix and
    ``F_i = sum_j W_ij z_j``.
    """

    def __init__(self, omega: np.ndarray, theta0: np.ndarray, dt: float,
                 strength: float = 0.0,
                 weights: np.ndarray | None = None) -> None:
        omega = np.asarray(omega, dtype=np.float64)
        # E2 = exp(i omega dt / 2) and E = E2^2, computed once.
        self.e2 = np.exp(0.5j * dt * omega)
        self.e = self.e2 * self.e2
        self.z = np.exp(1j * np.asarray(theta0, dtype=np.float64))
        self.dt = dt
        self.strength = strength
        self.weights = (None if weights is None
                        else np.ascontiguousarray(weights, dtype=np.float64))

    def coupling_field(self, z: np.ndarray):
        """``F``: a scalar (mean field) or one value per oscillator."""
        if self.weights is None:
            return self.strength * z.mean()
        # W is real and z complex. ``W @ z`` would first copy W to complex128
        # (N^2 complex numbers on every call). Two real mat-vecs (BLAS dgemv
        # on the strided real and imaginary views) avoid that copy. Measured
        # on 2 cores (OpenBLAS): N = 1000, 0.33 ms against 1.3-1.8 ms for
        # ``W @ z`` and 0.5 ms for one (N, N) @ (N, 2) product on
        # ``z.view(float64)``; N = 5000, 11-26 ms against 100-160 ms and
        # 20-32 ms. So this form is the fastest of the three.
        f = np.empty_like(z)
        f.real = self.weights @ z.real
        f.imag = self.weights @ z.imag
        return f

    def coupling(self, u: np.ndarray) -> np.ndarray:
        """``N(u) = (F |u|^2 - u^2 conj(F)) / 2`` with ``F`` from ``u``."""
        f = self.coupling_field(u)
        n = (-0.5 * np.conj(f)) * u
        n *= u
        abs2 = u.real ** 2  # |u|^2 without a sqrt
        abs2 += u.imag ** 2
        n += (0.5 * f) * abs2
        return n

    def step(self) -> None:
        """One integrating-factor RK4 step, then projection onto the circle:

        k1 = N(z); k2 = N(E2 (z + h/2 k1)); k3 = N(E2 z + h/2 k2);
        k4 = N(E z + h E2 k3); z = E z + h/6 (E k1 + 2 E2 (k2 + k3) + k4).
        """
        h = self.dt
        z, e, e2 = self.z, self.e, self.e2
        e2z = e2 * z
        k1 = self.coupling(z)
        k2 = self.coupling(e2 * (z + (0.5 * h) * k1))
        k3 = self.coupling(e2z + (0.5 * h) * k2)
        k4 = self.coupling(e2 * (e2z + h * k3))
        k2 += k3
        k2 *= 2.0 * e2
        k1 *= e
        k1 += k2
        k1 += k4
        k1 *= h / 6.0
        z *= e
        z += k1
        z /= np.abs(z)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.step()

    def order_parameter(self) -> float:
        """``r = |mean(z)|``."""
        return float(abs(self.z.mean()))


def lorentzian_quantiles(n: int, center: float, width: float) -> np.ndarray:
    """Frequencies at the quantiles ``(i + 1/2)/n`` of a Lorentzian, as
    ``nfcs_math_kernels::kuramoto::lorentzian_quantiles``."""
    quantile = (np.arange(n) + 0.5) / n
    return center + width * np.tan(np.pi * (quantile - 0.5))


def uniform_phases(n: int, seed: int) -> np.ndarray:
    """Phases uniform on ``[0, 2 pi)`` from a seeded NumPy generator (not
    the same stream as the Rust generator)."""
    return np.random.default_rng(seed).uniform(0.0, 2.0 * np.pi, size=n)


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


def plane_wave_run(dt: float, steps: int, b: float = 0.5, c: float = 0.3,
                   solver=None):
    """Run the plane wave ``sqrt(1 - k^2) exp(i k.x)``, ``k = 2 pi (2, 1)/L``,
    on ``L = n = 32`` with ``solver`` (a class with ``CglEtdrk4``'s
    constructor, ``run`` and ``field``; ``CglEtdrk4`` by default); return
    (initial field, final field, k^2)."""
    solver = CglEtdrk4 if solver is None else solver
    n, length = 32, 32.0
    kvec = 2.0 * np.pi * np.array([2.0, 1.0]) / length
    ksq = float(kvec @ kvec)
    x = np.arange(n) * length / n
    phase0 = kvec[0] * x[None, :] + kvec[1] * x[:, None]  # [y, x]
    field0 = np.sqrt(1.0 - ksq) * np.exp(1j * phase0)
    run = solver(n, length, dt, b, c, field0)
    run.run(steps)
    return field0, run.field(), ksq


def check_cgl_plane_wave(solver=None, label: str = "numpy") -> list[str]:
    """A plane wave is an exact solution of the PDE that keeps
    ``|A|^2 = 1 - k^2`` and rotates with ``omega = b k^2 + c (1 - k^2)``.

    ETDRK4 does not preserve it exactly: its amplitude drifts by the
    scheme's O(dt^4) truncation error, about 1e-7 in ``mean |A|^2`` after
    100 steps of 0.05 (b = 0.5, c = 0.3). A 1e-9 tolerance needs
    dt <= 0.0125, so the amplitude is checked within 1e-6 at dt = 0.05 and
    its error must fall at fourth order when dt is halved.
    """
    b, c, dt, steps = 0.5, 0.3, 0.05, 100
    field0, field, ksq = plane_wave_run(dt, steps, b, c, solver)

    failures = []
    intensity = float(np.mean(field.real ** 2 + field.imag ** 2))
    err = abs(intensity - (1.0 - ksq))
    print(f"  [{label}] cgl plane wave (n=L=32, dt={dt}, b={b}, c={c}, "
          f"{steps} steps): "
          f"mean |A|^2 = {intensity:.15f}, 1 - k^2 = {1.0 - ksq:.15f}, "
          f"error {err:.2e} (tol 1e-6)")
    if not err <= 1e-6:
        failures.append(f"[{label}] cgl plane-wave amplitude")

    _, half, _ = plane_wave_run(dt / 2.0, 2 * steps, b, c, solver)
    err_half = abs(float(np.mean(half.real ** 2 + half.imag ** 2))
                   - (1.0 - ksq))
    order = np.log2(err / err_half) if err_half > 0.0 else np.inf
    print(f"  [{label}] cgl plane wave: amplitude error {err_half:.2e} at dt={dt / 2}, "
          f"observed order {order:.2f} (need 3.7 to 4.3)")
    if not 3.7 <= order <= 4.3:
        failures.append(f"[{label}] cgl fourth-order convergence")

    omega = b * ksq + c * (1.0 - ksq)
    # Phase advance of the mode: projection on the initial wave.
    advance = np.angle(np.vdot(field0, field))
    expected = -omega * steps * dt
    perr = abs(np.angle(np.exp(1j * (advance - expected))))
    print(f"  [{label}] cgl plane wave: phase advance {advance:.12f}, "
          f"-omega t = {np.angle(np.exp(1j * expected)):.12f} (mod 2 pi), "
          f"error {perr:.2e} (tol 1e-6)")
    if not perr <= 1e-6:
        failures.append(f"[{label}] cgl plane-wave phase")
    return failures


def check_kuramoto_sync() -> list[str]:
    """Identical oscillators above threshold synchronise."""
    n, strength, dt, steps = 100, 2.0, 0.01, 2000
    net = Kuramoto(np.ones(n), uniform_phases(n, 1), dt, strength=strength)
    r0 = net.order_parameter()
    net.run(steps)
    r = net.order_parameter()
    print(f"  kuramoto mean field: N={n}, K={strength}, identical omega=1: "
          f"r {r0:.4f} -> {r:.9f} after {steps} steps (need > 0.999)")
    return [] if r > 0.999 else ["kuramoto synchronisation"]


def check_kuramoto_dense() -> list[str]:
    """Dense coupling ``W = K/N`` reproduces the mean field."""
    n, strength, dt, steps = 50, 2.0, 0.01, 100
    omega = lorentzian_quantiles(n, 0.0, 0.5)
    theta0 = uniform_phases(n, 3)
    mean_field = Kuramoto(omega, theta0, dt, strength=strength)
    dense = Kuramoto(omega, theta0, dt,
                     weights=np.full((n, n), strength / n))
    mean_field.run(steps)
    dense.run(steps)
    r_mf, r_dense = mean_field.order_parameter(), dense.order_parameter()
    err = abs(r_mf - r_dense)
    zerr = float(np.max(np.abs(mean_field.z - dense.z)))
    print(f"  kuramoto dense vs mean field: N={n}, {steps} steps: "
          f"r {r_dense:.15f} vs {r_mf:.15f}, |dr| {err:.2e} (tol 1e-10), "
          f"max |dz| {zerr:.2e}")
    return [] if err <= 1e-10 else ["kuramoto dense vs mean field"]


def load_fftw():
    """The FFTW + numba peer module, or the reason it cannot be imported."""
    try:
        import fftw_numba_reference  # noqa: PLC0415 - optional peer
    except ImportError as error:
        return None, f"{type(error).__name__}: {error}"
    return fftw_numba_reference, None


def fftw_solvers(module) -> dict:
    """The FFTW + numba subjects: one thread, and all the CPUs."""
    threads = module.available_threads()

    def make(count):
        def solver(n, length, dt, b, c, field):
            return module.CglFftwNumba(n, length, dt, b, c, field,
                                       threads=count)
        return solver
    return {"fftw_1t": make(1), "fftw_all": make(threads)}


def check_cgl_same_as_numpy(solver, label: str) -> list[str]:
    """The peer follows the NumPy solver step for step: the benchmark's
    noise field on 64^2 after 20 steps agrees to rounding."""
    n, length, dt, b, c = 64, 50.0, 0.05, 0.5, -0.5
    field = cgl_noise(n, 0.01, 7)
    reference = CglEtdrk4(n, length, dt, b, c, field)
    peer = solver(n, length, dt, b, c, field)
    reference.run(20)
    peer.run(20)
    expected, got = reference.field(), peer.field()
    err = float(np.max(np.abs(got - expected)) / np.max(np.abs(expected)))
    print(f"  [{label}] cgl noise 64^2, 20 steps: max |A - A_numpy| / "
          f"max |A_numpy| = {err:.2e} (tol 1e-12)")
    return [] if err <= 1e-12 else [f"[{label}] cgl same as numpy"]


def run_checks() -> int:
    print("Checks:")
    failures = (check_cgl_plane_wave() + check_kuramoto_sync()
                + check_kuramoto_dense())
    module, reason = load_fftw()
    if module is None:
        print(f"  FFTW + numba peer not checked: {reason}")
    else:
        for label, solver in fftw_solvers(module).items():
            failures += check_cgl_plane_wave(solver, label)
            failures += check_cgl_same_as_numpy(solver, label)
    if failures:
        print("FAILED: " + ", ".join(failures))
        return 1
    print("all checks passed")
    return 0


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------

CGL_SIZES = (64, 128, 256, 512)
MEAN_FIELD_SIZES = (50, 1_000, 100_000, 1_000_000)
DENSE_SIZES = (50, 1_000, 5_000)
MIN_BATCHES = 5
#: Batches aimed for within the time budget (at least MIN_BATCHES run).
TARGET_BATCHES = 10


def time_steps(run, seconds: float) -> dict:
    """Median steps/s of ``run(steps)`` over timed batches.

    An untimed calibration picks the batch size so that about
    TARGET_BATCHES batches fill ``seconds``; batches then run until
    ``seconds`` have passed and at least MIN_BATCHES have been timed.
    """
    # Calibrate: double the step count until a run takes >= 20 ms, then
    # time that count once more and keep the faster of the two (a single
    # slow outlier must not shrink every batch to one step).
    steps = 1
    while True:
        t0 = time.perf_counter()
        run(steps)
        elapsed = time.perf_counter() - t0
        if elapsed >= 0.02:
            break
        steps *= 2
    t0 = time.perf_counter()
    run(steps)
    per_step = min(elapsed, time.perf_counter() - t0) / steps
    batch = max(1, int(seconds / TARGET_BATCHES / per_step))

    rates = []
    start = time.perf_counter()
    while len(rates) < MIN_BATCHES or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        run(batch)
        rates.append(batch / (time.perf_counter() - t0))
    return {"steps_per_second": statistics.median(rates),
            "batches": len(rates), "steps_per_batch": batch}


def bench_cgl(n: int, seconds: float) -> dict:
    length, dt, b, c = 50.0, 0.05, 0.5, -0.5
    solver = CglEtdrk4(n, length, dt, b, c, cgl_noise(n, 0.01, 7))
    solver.run(20)  # warm-up
    return time_steps(solver.run, seconds)


def bench_mean_field(n: int, seconds: float) -> dict:
    net = Kuramoto(lorentzian_quantiles(n, 0.0, 0.5), uniform_phases(n, 42),
                   0.01, strength=4.0)
    net.run(2)  # warm-up
    return time_steps(net.run, seconds)


def bench_dense(n: int, seconds: float) -> dict:
    weights = np.full((n, n), 4.0 / n)
    net = Kuramoto(lorentzian_quantiles(n, 0.0, 0.5), uniform_phases(n, 42),
                   0.01, weights=weights)
    net.run(2)  # warm-up
    return time_steps(net.run, seconds)


BENCHES = {
    "cgl": ("cgl", CGL_SIZES, bench_cgl),
    "mean_field": ("kuramoto_mean_field", MEAN_FIELD_SIZES, bench_mean_field),
    "dense": ("kuramoto_dense", DENSE_SIZES, bench_dense),
}

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS")


def threads_note() -> str:
    """The thread-count environment variables that are set, if any."""
    set_vars = [f"{name}={os.environ[name]}" for name in THREAD_VARIABLES
                if name in os.environ]
    return ", ".join(set_vars) if set_vars else "unset"


def blas_info() -> dict:
    """Which BLAS NumPy was built with and, best effort, how many threads
    OpenBLAS uses (read through its C API; None when not found)."""
    info: dict = {"name": None, "version": None, "threads": None}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["name"], info["version"] = blas.get("name"), blas.get("version")
    except Exception:  # noqa: BLE001 - purely informative
        pass
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line}
        for path in paths:
            lib = ctypes.CDLL(path)
            for symbol in ("scipy_openblas_get_num_threads64_",
                           "openblas_get_num_threads64_",
                           "openblas_get_num_threads"):
                if hasattr(lib, symbol):
                    info["threads"] = int(getattr(lib, symbol)())
                    return info
    except OSError:
        pass
    return info


def dgemv_bandwidth() -> float:
    """GB/s at which BLAS streams a 5000 x 5000 float64 matrix through a
    mat-vec (best of 10): a measured memory rate for the floors of the
    benchmark table (BLAS prefetches well, so it is a good probe)."""
    weights = np.ones((5000, 5000))
    vector = np.ones(5000)
    weights @ vector
    best = float("inf")
    for _ in range(10):
        started = time.perf_counter()
        weights @ vector
        best = min(best, time.perf_counter() - started)
    return weights.nbytes / best / 1e9


def run_timings(kernels: list[str], seconds: float, out: str | None) -> int:
    blas = blas_info()
    print(f"numpy {np.__version__}, Python {platform.python_version()}, "
          f"BLAS {blas['name']} {blas['version']} "
          f"({blas['threads']} threads), thread env: {threads_note()}")
    print("Kuramoto frequencies: Lorentzian quantiles (centre 0, width 0.5); "
          f"{seconds:g} s per size")
    print(f"{'kernel':<22}{'size':>10}{'steps/s':>14}{'batches':>9}")
    results = []
    for key in kernels:
        kernel, sizes, bench = BENCHES[key]
        for size in sizes:
            result = {"kernel": kernel, "size": size, **bench(size, seconds)}
            results.append(result)
            print(f"{kernel:<22}{size:>10}{result['steps_per_second']:>14.6g}"
                  f"{result['batches']:>9}", flush=True)
    if out:
        report = {
            "numpy_version": np.__version__,
            "python_version": platform.python_version(),
            "threads_note": threads_note(),
            "blas": blas,
            "cpu_count": os.cpu_count(),
            "seconds_per_size": seconds,
            "kuramoto_frequencies":
                "lorentzian_quantiles(center=0, width=0.5)",
            "results": results,
            "dgemv_gb_per_s": dgemv_bandwidth(),
        }
        directory = os.path.dirname(os.path.abspath(out))
        os.makedirs(directory, exist_ok=True)
        with open(out, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
            handle.write("\n")
        print(f"wrote {out}")
    return 0


# ---------------------------------------------------------------------------
# Serve mode: timed on command, interleaved with the Rust solver
# ---------------------------------------------------------------------------


def timed_rate(run, seconds: float) -> dict:
    """Steps/s of ``run(steps)`` over one stretch of about ``seconds``.

    Batches grow (doubling, at most what the remaining time holds at the
    rate so far) until ``seconds`` have passed; the rate is all the steps
    over all the time. The Rust side (``benches/kernels.rs``) measures its
    own solver the same way.
    """
    steps, batch = 0, 1
    start = time.perf_counter()
    while True:
        run(batch)
        steps += batch
        elapsed = time.perf_counter() - start
        remaining = seconds - elapsed
        per_step = elapsed / steps
        if remaining < 0.5 * per_step:
            break
        batch = max(1, min(2 * batch, int(remaining / per_step)))
    return {"steps_per_second": steps / elapsed, "steps": steps,
            "elapsed": elapsed}


def prepare_subject(subject: str, kernel: str, size: int, fftw):
    """The warmed-up solver of ``subject`` for ``kernel`` at ``size``: its
    ``run(steps)``. Same set-ups as the standalone timings (``bench_*``)."""
    # cgl_batch<k>: the Rust side steps k fields at once; a peer steps one.
    if kernel == "cgl" or kernel.startswith("cgl_batch"):
        if subject == "numpy":
            solver = CglEtdrk4
        elif subject in ("fftw_1t", "fftw_all"):
            if fftw is None:
                raise ValueError("the FFTW + numba peer is not available")
            solver = fftw_solvers(fftw)[subject]
        else:
            raise ValueError(f"no subject {subject!r} for cgl")
        length, dt, b, c = 50.0, 0.05, 0.5, -0.5
        state = solver(size, length, dt, b, c, cgl_noise(size, 0.01, 7))
        state.run(20)  # warm-up, and numba's compilation
        return state.run
    if subject != "numpy":
        raise ValueError(f"no subject {subject!r} for {kernel}")
    omega = lorentzian_quantiles(size, 0.0, 0.5)
    phases = uniform_phases(size, 42)
    if kernel == "kuramoto_mean_field":
        net = Kuramoto(omega, phases, 0.01, strength=4.0)
    elif kernel in ("kuramoto_dense", "kuramoto_dense_f32"):
        # kuramoto_dense_f32: the Rust side's matrix is f32; NumPy's stays f64.
        net = Kuramoto(omega, phases, 0.01,
                       weights=np.full((size, size), 4.0 / size))
    else:
        raise ValueError(f"no kernel {kernel!r}")
    net.run(2)  # warm-up
    return net.run


def serve_info(fftw, fftw_reason) -> dict:
    blas = blas_info()
    info = {
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "threads_note": threads_note(),
        "blas": blas,
        "cpu_count": os.cpu_count(),
        "fftw": {"available": fftw is not None, "reason": fftw_reason},
    }
    if fftw is not None:
        info["fftw"].update(fftw.versions())
    return info


def serve() -> int:
    """Answer one JSON line on stdout for each JSON line on stdin.

    Requests (``op``): ``info``; ``prepare`` (``subject``: ``numpy``,
    ``fftw_1t`` or ``fftw_all``; ``kernel``: ``cgl``,
    ``kuramoto_mean_field`` or ``kuramoto_dense``; ``size``), which sets up
    and warms up that solver outside the clock, dropping those of other
    kernels and sizes; ``time`` (the same three and ``seconds``), answered
    with ``steps_per_second``, ``steps`` and ``elapsed``; ``dgemv``
    (``gb_per_s``); ``quit``. A request that fails is answered with
    ``error``; nothing else is written on stdout.
    """
    fftw, fftw_reason = load_fftw()
    prepared: dict = {}
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            op = request.get("op")
            if op == "quit":
                break
            if op == "info":
                reply = serve_info(fftw, fftw_reason)
            elif op == "dgemv":
                prepared.clear()
                reply = {"gb_per_s": dgemv_bandwidth()}
            elif op in ("prepare", "time"):
                key = (request["subject"], request["kernel"],
                       int(request["size"]))
                if op == "prepare":
                    for other in [k for k in prepared if k[1:] != key[1:]]:
                        del prepared[other]
                    started = time.perf_counter()
                    prepared[key] = prepare_subject(*key, fftw)
                    reply = {"setup_seconds": time.perf_counter() - started}
                elif key not in prepared:
                    raise ValueError(f"{key} was not prepared")
                else:
                    reply = timed_rate(prepared[key],
                                       float(request["seconds"]))
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as error:  # noqa: BLE001 - reported to the caller
            reply = {"error": f"{type(error).__name__}: {error}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


def parse_kernels(values: list[str] | None) -> list[str]:
    if not values:
        return list(BENCHES)
    chosen = []
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if name not in BENCHES:
                raise SystemExit(f"unknown kernel {name!r}; "
                                 f"choose from {', '.join(BENCHES)}")
            if name not in chosen:
                chosen.append(name)
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="NumPy reference of the nfcs-math-kernels algorithms: "
                    "correctness checks and timings.")
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="timing budget per size (default 1.0)")
    parser.add_argument("--only", action="append", metavar="KERNEL",
                        help="cgl, mean_field or dense "
                             "(repeatable or comma separated)")
    parser.add_argument("--check", action="store_true",
                        help="run the correctness checks and exit")
    parser.add_argument("--out", metavar="PATH",
                        help="write the timings as JSON to PATH")
    parser.add_argument("--serve", action="store_true",
                        help="answer JSON requests on stdin (see serve())")
    args = parser.parse_args(argv)
    if args.check:
        return run_checks()
    if args.serve:
        return serve()
    if not args.seconds > 0:
        parser.error("--seconds must be positive")
    return run_timings(parse_kernels(args.only), args.seconds, args.out)


if __name__ == "__main__":
    sys.exit(main())
