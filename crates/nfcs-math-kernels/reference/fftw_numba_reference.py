#!/usr/bin/env python3
"""FFTW + numba peer of the nfcs-math-kernels CGL solver.

The same pseudo-spectral ETDRK4 step as ``numpy_reference.CglEtdrk4`` (the
very same coefficient arrays, from ``numpy_reference.etdrk4_coefficients``,
the same grid, ``dt`` and parameters, the same 8 two-dimensional FFTs a
step), written the way one would to make it fast in Python:

- the FFTs are ``pyfftw.FFTW`` objects planned once, with ``FFTW_MEASURE``,
  on 64-byte aligned arrays that never move: one inverse plan from each
  spectral stage (``v``, ``a``, ``b``, ``c``) into the physical work array
  and one forward plan from it into each nonlinear term (``Nv``, ``Na``,
  ``Nb``, ``Nc``), called with ``execute()`` (no copies, no normalisation:
  the ``1/n^2`` of the inverse transform is folded into ``N(A)``);
- everything pointwise (``N(A) = -(1 + i c) |A|^2 A`` and the four ETDRK4
  combinations) is one numba loop each, ``@njit(fastmath=False)`` so the
  arithmetic is IEEE as NumPy's; no temporaries are allocated per step;
- ``threads=1``: FFTW on one thread and serial loops; ``threads > 1``: FFTW
  on that many threads and the loops compiled with ``parallel=True``
  (``prange``) and run on that many numba threads.

Needs ``numpy``, ``pyfftw`` and ``numba`` (``cargo xtask compare`` installs
them into ``target/numpy-venv``). ``numpy_reference.py --check`` runs the
plane-wave checks on this solver too; ``numpy_reference.py --serve`` times it
beside the Rust solver (subjects ``fftw_1t`` and ``fftw_all``).
"""

from __future__ import annotations

import os

# numba's parallel loops run on OpenMP (GNU libgomp here), whose idle threads spin by default.
# On a machine with as many cores as threads, the spinning numba threads took the cores FFTW's
# threads needed between the passes: the threaded variant ran at 5 to 16 steps/s at every grid
# size (a fixed ~70 ms a step) instead of about 1,000 at 64^2. Passive waiting (the threads
# sleep when idle) must be set before the OpenMP runtime starts, so before numba is imported;
# a value the caller set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402  (after the OpenMP setting above)
import numpy as np
import pyfftw
from numba import njit, prange

from numpy_reference import etdrk4_coefficients

#: FFTW's planner effort for every plan (planned once, outside the clock).
PLANNER_EFFORT = "FFTW_MEASURE"


def available_threads() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _compile(parallel: bool):
    """The pointwise loops, serial or with ``prange`` across numba threads.

    Every array is a flat, contiguous view of an ``(n, n)`` complex128 array.
    """
    jit = njit(fastmath=False, parallel=parallel, nogil=True, cache=False)

    @jit
    def nonlinear(u, scale, cubic):
        # u holds the unnormalised inverse FFT: A = scale * u, and
        # u <- -(1 + i c) |A|^2 A, in place.
        for i in prange(u.shape[0]):
            w = u[i] * scale
            u[i] = cubic * (w * (w.real * w.real + w.imag * w.imag))

    @jit
    def stage_a(e2, q, v, nv, e2v, a):
        # e2v = E2 v; a = E2 v + Q Nv
        for i in prange(v.shape[0]):
            t = e2[i] * v[i]
            e2v[i] = t
            a[i] = t + q[i] * nv[i]

    @jit
    def stage_b(q, e2v, na, b):
        # b = E2 v + Q Na
        for i in prange(na.shape[0]):
            b[i] = e2v[i] + q[i] * na[i]

    @jit
    def stage_c(e2, q, a, nv, nb, c):
        # c = E2 a + Q (2 Nb - Nv)
        for i in prange(a.shape[0]):
            c[i] = e2[i] * a[i] + q[i] * (2.0 * nb[i] - nv[i])

    @jit
    def update(e, f1, f2, f3, v, nv, na, nb, nc):
        # v <- E v + f1 Nv + 2 f2 (Na + Nb) + f3 Nc
        for i in prange(v.shape[0]):
            v[i] = (e[i] * v[i] + f1[i] * nv[i] + 2.0 * f2[i] * (na[i] + nb[i])
                    + f3[i] * nc[i])

    return nonlinear, stage_a, stage_b, stage_c, update


_SERIAL = None
_PARALLEL = None


def _loops(parallel: bool):
    """The compiled loops (compiled on first use, then shared)."""
    global _SERIAL, _PARALLEL  # noqa: PLW0603 - a compile-once cache
    if parallel:
        if _PARALLEL is None:
            _PARALLEL = _compile(True)
        return _PARALLEL
    if _SERIAL is None:
        _SERIAL = _compile(False)
    return _SERIAL


class CglFftwNumba:
    """ETDRK4 for the complex Ginzburg-Landau equation on FFTW and numba.

    Same constructor as ``numpy_reference.CglEtdrk4`` plus ``threads``; the
    state is kept in Fourier space (``self.v``).
    """

    def __init__(self, n: int, length: float, dt: float, b: float, c: float,
                 field: np.ndarray, threads: int = 1) -> None:
        self.n = n
        self.threads = max(1, int(threads))
        self.cubic = complex(-(1.0 + 1j * c))
        self.scale = 1.0 / (n * n)

        def aligned():
            return pyfftw.zeros_aligned((n, n), dtype=np.complex128,
                                        n=pyfftw.simd_alignment)

        coefficients = etdrk4_coefficients(n, length, dt, b)
        self.E, self.E2, self.Q, self.f1, self.f2, self.f3 = (
            self._copy(aligned(), array) for array in coefficients)
        self.v, self.a, self.b, self.c = (aligned() for _ in range(4))
        self.nv, self.na, self.nb, self.nc = (aligned() for _ in range(4))
        self.e2v, self.u = aligned(), aligned()

        # FFTW_MEASURE overwrites the arrays it plans on: plan first, then
        # fill the state.
        flags = (PLANNER_EFFORT,)
        plan = {"axes": (0, 1), "flags": flags, "threads": self.threads}
        self._inverse = [
            pyfftw.FFTW(source, self.u, direction="FFTW_BACKWARD", **plan)
            for source in (self.v, self.a, self.b, self.c)]
        self._forward = [
            pyfftw.FFTW(self.u, target, direction="FFTW_FORWARD", **plan)
            for target in (self.nv, self.na, self.nb, self.nc)]
        self.v[...] = np.fft.fft2(np.asarray(field, dtype=np.complex128))

        parallel = self.threads > 1
        if parallel:
            numba.set_num_threads(min(self.threads,
                                      numba.config.NUMBA_NUM_THREADS))
        (self._nonlinear, self._stage_a, self._stage_b, self._stage_c,
         self._update) = _loops(parallel)
        flat = {name: getattr(self, name).reshape(-1) for name in (
            "E", "E2", "Q", "f1", "f2", "f3", "v", "a", "b", "c", "nv", "na",
            "nb", "nc", "e2v", "u")}
        self._flat = flat
        self._args_a = (flat["E2"], flat["Q"], flat["v"], flat["nv"],
                        flat["e2v"], flat["a"])
        self._args_b = (flat["Q"], flat["e2v"], flat["na"], flat["b"])
        self._args_c = (flat["E2"], flat["Q"], flat["a"], flat["nv"],
                        flat["nb"], flat["c"])
        self._args_update = (flat["E"], flat["f1"], flat["f2"], flat["f3"],
                             flat["v"], flat["nv"], flat["na"], flat["nb"],
                             flat["nc"])

    @staticmethod
    def _copy(target: np.ndarray, source: np.ndarray) -> np.ndarray:
        target[...] = source
        return target

    def _n(self, stage: int) -> None:
        """``N`` of spectral stage ``stage`` (v, a, b, c) into its term."""
        self._inverse[stage].execute()
        self._nonlinear(self._flat["u"], self.scale, self.cubic)
        self._forward[stage].execute()

    def step(self) -> None:
        """One ETDRK4 step of size ``dt``: 8 FFTs, 5 pointwise loops."""
        self._n(0)
        self._stage_a(*self._args_a)
        self._n(1)
        self._stage_b(*self._args_b)
        self._n(2)
        self._stage_c(*self._args_c)
        self._n(3)
        self._update(*self._args_update)

    def run(self, steps: int) -> None:
        step = self.step
        for _ in range(steps):
            step()

    def field(self) -> np.ndarray:
        """The field ``A[y, x]`` on the grid."""
        return np.fft.ifft2(self.v)


def versions() -> dict:
    """pyfftw's, numba's and FFTW's threading facts, for the report."""
    return {
        "pyfftw_version": pyfftw.__version__,
        "numba_version": numba.__version__,
        "numba_threading_layer_threads": numba.config.NUMBA_NUM_THREADS,
        "threads_all": available_threads(),
        "planner_effort": PLANNER_EFFORT,
    }
