#!/usr/bin/env python3
"""Reference miss-ratio curves from libCacheSim, to check our Rust MRC estimator.

Written against the PyPI package ``libcachesim`` 0.3.5 (``libcachesim.__version__``
== "0.3.5"), Python 3.11. Setup (from the repository root)::

    python3 -m venv target/libcachesim-venv
    target/libcachesim-venv/bin/pip install libcachesim==0.3.5

Usage::

    mrc_libcachesim.py TRACE --sizes 100,200,500 [--policies lru,s3fifo] [--ignore-size]
    mrc_libcachesim.py --self-test

TRACE is an ``oracleGeneral`` binary trace: little-endian 24-byte records
``struct { u32 clock_time; u64 obj_id; u32 obj_size; i64 next_access_vtime; }``.
``next_access_vtime`` may be -1 (unknown): libCacheSim's reader maps -1 to "no
next access", and only oracle policies (Belady etc.) read it; LRU and S3FIFO
never do, so -1 is fine here. ``clock_time`` is not used for expiry either
(checked: gaps of 10^7 s between accesses of the same object make no
difference, although libCacheSim's default_ttl is 300 days).

Output: one JSON object on stdout (libCacheSim's own log lines go to stderr)::

    {"trace": PATH, "requests": N, "size_unit": "bytes"|"objects",
     "zero_size_skipped": K,
     "policies": {"lru": [{"size": 100, "miss_ratio": 0.42,
                           "byte_miss_ratio": 0.40, "seconds": 1.2}, ...],
                  "s3fifo": [...]}}

``miss_ratio`` is the request (object) miss ratio, misses / requests;
``byte_miss_ratio`` weights each request by its obj_size.

Cache-size semantics (verified by ``--self-test``):

* Default: ``size`` is a capacity in bytes; an object occupies ``obj_size``
  bytes (no per-object metadata). An object larger than the whole cache is
  never admitted (always a miss). Records with ``obj_size == 0`` are skipped
  by libCacheSim's reader (``ReaderInitParam.ignore_size_zero_req`` defaults
  to True); they are not counted in ``requests`` (``zero_size_skipped`` says
  how many there were).
* ``--ignore-size``: every object has size 1 and ``size`` counts objects
  (``ReaderInitParam(ignore_obj_size=True)``); size-0 records are then kept
  and count as size 1.

libCacheSim API used::

    reader = libcachesim.TraceReader(path, libcachesim.TraceType.ORACLE_GENERAL_TRACE,
                                     libcachesim.ReaderInitParam(ignore_obj_size=...,
                                                                 ignore_size_zero_req=...))
    cache = libcachesim.LRU(cache_size)          # or libcachesim.S3FIFO(cache_size, ...)
    req_miss_ratio, byte_miss_ratio = cache.process_trace(reader)   # resets the reader itself

Each (policy, size) point is a separate full pass over the trace (single
threaded, C code).

S3FIFO as libCacheSim 0.3.5 defaults it (C defaults
``small-size-ratio=0.10,ghost-size-ratio=0.90,move-to-main-threshold=2``; the
Python wrapper passes the same values; cache name ``S3FIFO-0.1000-2``):

* small FIFO capacity = int(size * 0.1), main FIFO = size - small (main is a
  FIFO with a 2-bit clock-style reinsertion counter), ghost FIFO (ids only)
  = int(size * 0.9), in the same unit as ``size`` (bytes of the evicted
  objects' sizes, or objects with ``--ignore-size``).
* An object evicted from the small FIFO moves to main only if it was hit
  >= 2 times while in small (threshold 2, not the paper's "hit at least once";
  checked by ``--self-test``); otherwise its id goes to the ghost. A miss whose
  id is in the ghost is inserted into main directly.
* Until the first eviction, a miss that finds the small FIFO full goes to main.
* A new object (not a ghost hit) with obj_size >= small capacity is not cached
  at all. So with ``--ignore-size`` S3FIFO caches nothing below 20 objects
  (small capacity 1 object), and below 10 objects libCacheSim aborts the whole
  process (small capacity 0); this script refuses such sizes and reports
  ``"miss_ratio": null`` with an ``"error"`` instead.
  ``--s3fifo-small-ratio``, ``--s3fifo-ghost-ratio`` and
  ``--s3fifo-move-threshold`` override the three parameters.
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
import time

import libcachesim as lcs
import numpy as np

RECORD_SIZE = 24
WRITTEN_AGAINST = "0.3.5"


def count_requests(path: str, ignore_size: bool) -> tuple[int, int]:
    """Return (requests libCacheSim will process, size-0 records skipped)."""
    nbytes = os.path.getsize(path)
    if nbytes % RECORD_SIZE:
        sys.exit(f"{path}: size {nbytes} is not a multiple of {RECORD_SIZE} (oracleGeneral records)")
    n = nbytes // RECORD_SIZE
    if n == 0 or ignore_size:
        return n, 0
    rec = np.memmap(path, dtype=np.dtype([("t", "<u4"), ("id", "<u8"), ("sz", "<u4"), ("nx", "<i8")]), mode="r")
    zero = int(np.count_nonzero(rec["sz"] == 0))
    return n - zero, zero


def open_reader(path: str, ignore_size: bool) -> lcs.TraceReader:
    params = lcs.ReaderInitParam(ignore_obj_size=ignore_size, ignore_size_zero_req=not ignore_size)
    return lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE, params)


def make_cache(policy: str, size: int, s3: argparse.Namespace):
    """Build a libCacheSim cache; raise ValueError for sizes libCacheSim can't take."""
    if policy == "lru":
        return lcs.LRU(size)
    if policy == "s3fifo":
        small = int(size * s3.s3fifo_small_ratio)  # same truncation as S3FIFO_init in C
        if small <= 0 or size - small <= 0:
            raise ValueError(f"S3FIFO small queue would be {small} (libCacheSim aborts on it)")
        return lcs.S3FIFO(
            size,
            small_size_ratio=s3.s3fifo_small_ratio,
            ghost_size_ratio=s3.s3fifo_ghost_ratio,
            move_to_main_threshold=s3.s3fifo_move_threshold,
        )
    raise ValueError(f"unknown policy {policy!r}")


def compute(path: str, sizes: list[int], policies: list[str], ignore_size: bool, s3: argparse.Namespace) -> dict:
    requests, zero = count_requests(path, ignore_size)
    reader = open_reader(path, ignore_size)
    out: dict = {
        "trace": path,
        "requests": requests,
        "size_unit": "objects" if ignore_size else "bytes",
        "zero_size_skipped": zero,
        "libcachesim_version": lcs.__version__,
        "policies": {},
    }
    for policy in policies:
        points = []
        for size in sizes:
            try:
                cache = make_cache(policy, size, s3)
            except ValueError as e:
                points.append({"size": size, "miss_ratio": None, "byte_miss_ratio": None, "error": str(e)})
                continue
            t0 = time.perf_counter()
            miss, byte_miss = cache.process_trace(reader)
            points.append(
                {
                    "size": size,
                    "miss_ratio": miss,
                    "byte_miss_ratio": byte_miss,
                    "seconds": round(time.perf_counter() - t0, 3),
                }
            )
            del cache
        out["policies"][policy] = points
    return out


def write_trace(path: str, records) -> None:
    """records: iterable of (clock_time, obj_id, obj_size); next_access_vtime = -1."""
    with open(path, "wb") as f:
        for t, obj, size in records:
            f.write(struct.pack("<IQIq", t, obj, size, -1))


def self_test(s3: argparse.Namespace) -> None:
    """Hand-checkable cases: LRU on cyclic scans (objects and bytes), S3FIFO's threshold."""

    def mr(path, policy, size, ignore_size):
        return compute(path, [size], [policy], ignore_size, s3)["policies"][policy][0]["miss_ratio"]

    def close(a, b):
        return a is not None and abs(a - b) < 1e-9

    failures = []
    with tempfile.TemporaryDirectory() as d:
        cyc = os.path.join(d, "cyc.bin")  # 0,1,2,0,1,2,... 30 requests, size 1
        write_trace(cyc, ((i, i % 3, 1) for i in range(30)))
        cycb = os.path.join(d, "cycb.bin")  # same ids, obj_size 10
        write_trace(cycb, ((i, i % 3, 10) for i in range(30)))
        thr = os.path.join(d, "thr.bin")
        ids = list(range(100, 120)) + [1, 1, 2, 3, 1]
        write_trace(thr, ((i, o, 1) for i, o in enumerate(ids)))
        cases = [
            # 3-object cyclic scan, LRU of 2 objects: every request misses.
            ("lru cyclic-3, 2 objects", cyc, "lru", 2, True, 1.0),
            # LRU of 3 objects: only the 3 compulsory misses out of 30.
            ("lru cyclic-3, 3 objects", cyc, "lru", 3, True, 0.1),
            # Byte mode, objects of 10 bytes: 29 bytes hold only 2 objects.
            ("lru cyclic-3 x 10B, 29 bytes", cycb, "lru", 29, False, 1.0),
            ("lru cyclic-3 x 10B, 30 bytes", cycb, "lru", 30, False, 0.1),
            # Same trace with --ignore-size: the size counts objects.
            ("lru cyclic-3 x 10B ignore-size, 3 objects", cycb, "lru", 3, True, 0.1),
            # S3FIFO, 20 objects (small 2, main 18). 100..119 fill it (2 in small,
            # 18 in main); 1 misses (evicts 100 from small), 1 hits once, 2 and 3
            # miss and push 1 out of small with freq 1 < threshold 2 -> ghost;
            # so the last 1 misses: 24 misses / 25 (23 / 25 with threshold 1).
            ("s3fifo move-to-main threshold", thr, "s3fifo", 20, True,
             (24 if s3.s3fifo_move_threshold >= 2 else 23) / 25),
        ]
        for name, path, policy, size, ign, want in cases:
            got = mr(path, policy, size, ign)
            print(f"{'ok  ' if close(got, want) else 'FAIL'} {name}: miss_ratio {got} (expected {want})", file=sys.stderr)
            if not close(got, want):
                failures.append(name)
        # S3FIFO below 10 objects must be refused, not abort the process.
        pt = compute(cyc, [5], ["s3fifo"], True, s3)["policies"]["s3fifo"][0]
        ok = pt["miss_ratio"] is None and "error" in pt
        print(f"{'ok  ' if ok else 'FAIL'} s3fifo 5 objects refused: {pt}", file=sys.stderr)
        if not ok:
            failures.append("s3fifo refuse")
    print(f"{6 + 1 - len(failures)} passed, {len(failures)} failed", file=sys.stderr)
    sys.exit(1 if failures else 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace", nargs="?", help="oracleGeneral binary trace")
    ap.add_argument("--sizes", help="comma-separated cache sizes (bytes, or objects with --ignore-size)")
    ap.add_argument("--policies", default="lru,s3fifo", help="comma-separated subset of lru,s3fifo")
    ap.add_argument("--ignore-size", action="store_true", help="every object has size 1; sizes count objects")
    ap.add_argument("--s3fifo-small-ratio", type=float, default=0.1)
    ap.add_argument("--s3fifo-ghost-ratio", type=float, default=0.9)
    ap.add_argument("--s3fifo-move-threshold", type=int, default=2)
    ap.add_argument("--self-test", action="store_true", help="run the hand-checked cases and exit")
    a = ap.parse_args()

    if lcs.__version__ != WRITTEN_AGAINST:
        print(f"warning: written against libcachesim {WRITTEN_AGAINST}, found {lcs.__version__}", file=sys.stderr)
    if a.self_test:
        self_test(a)
    if not a.trace or not a.sizes:
        ap.error("TRACE and --sizes are required (or use --self-test)")
    sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
    if any(s <= 0 for s in sizes):
        ap.error("sizes must be positive")
    policies = [p.strip().lower() for p in a.policies.split(",") if p.strip()]
    for p in policies:
        if p not in ("lru", "s3fifo"):
            ap.error(f"unknown policy {p!r} (known: lru, s3fifo)")
    json.dump(compute(a.trace, sizes, policies, a.ignore_size, a), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
