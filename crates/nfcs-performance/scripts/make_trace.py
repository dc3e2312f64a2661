#!/usr/bin/env python3
"""Write a synthetic Zipf trace in libCacheSim's ``oracleGeneral`` binary format.

Each request is one little-endian 24-byte record::

    struct { u32 clock_time; u64 obj_id; u32 obj_size; i64 next_access_vtime; }

``clock_time`` is the request index (mod 2**32), ``obj_id`` is the Zipf rank
(0 = most popular) unless ``--shuffle-ids``, ``next_access_vtime`` is -1
("unknown"; libCacheSim maps -1 to "never again", which LRU and S3FIFO ignore).

Usage::

    make_trace.py OUT --requests 10000000 --objects 1000000 [--alpha 1.0]
                  [--seed 1] [--obj-size 1 | --size-range 100,10000] [--shuffle-ids]

Needs numpy (installed with libcachesim, see mrc_libcachesim.py).
"""
import argparse

import numpy as np

RECORD = np.dtype(
    [("clock_time", "<u4"), ("obj_id", "<u8"), ("obj_size", "<u4"), ("next_access_vtime", "<i8")]
)
assert RECORD.itemsize == 24


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--requests", type=int, required=True)
    ap.add_argument("--objects", type=int, required=True)
    ap.add_argument("--alpha", type=float, default=1.0, help="Zipf exponent (default 1.0)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--obj-size", type=int, default=1, help="constant object size (default 1)")
    ap.add_argument("--size-range", help="LO,HI: per-object size drawn uniformly in [LO, HI]")
    ap.add_argument("--shuffle-ids", action="store_true", help="randomly permute ids vs. popularity rank")
    ap.add_argument("--chunk", type=int, default=1_000_000, help="records generated per batch")
    a = ap.parse_args()

    rng = np.random.default_rng(a.seed)
    cdf = np.cumsum(1.0 / np.arange(1, a.objects + 1, dtype=np.float64) ** a.alpha)
    cdf /= cdf[-1]
    ids = rng.permutation(a.objects).astype(np.uint64) if a.shuffle_ids else np.arange(a.objects, dtype=np.uint64)
    if a.size_range:
        lo, hi = (int(x) for x in a.size_range.split(","))
        sizes = rng.integers(lo, hi + 1, size=a.objects, dtype=np.uint32)
    else:
        sizes = np.full(a.objects, a.obj_size, dtype=np.uint32)

    with open(a.out, "wb") as f:
        done = 0
        while done < a.requests:
            n = min(a.chunk, a.requests - done)
            rank = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), a.objects - 1)
            rec = np.empty(n, dtype=RECORD)
            rec["clock_time"] = (np.arange(done, done + n, dtype=np.uint64) & 0xFFFFFFFF).astype(np.uint32)
            rec["obj_id"] = ids[rank]
            rec["obj_size"] = sizes[rank]
            rec["next_access_vtime"] = -1
            rec.tofile(f)
            done += n


if __name__ == "__main__":
    main()
