#!/usr/bin/env python3
"""Compare our miss-ratio curves (exact and estimated) with libCacheSim's.

Usage::

    target/libcachesim-venv/bin/python crates/nfcs-performance/scripts/mrc_compare.py OUTDIR [--s3fifo-ours]

OUTDIR is what ``target/release/examples/mrc_accuracy RATE READS OUTDIR``
writes: for each trace ``<name>``,

* ``<name>.oracleGeneral``: libCacheSim oracleGeneral binary trace (24-byte LE
  records; ``obj_size`` is our memory tier's per-entry charge in bytes), and
* ``<name>.json``: ``{"trace", "rate", "sizes": [bytes...], "curves": [{"policy":
  "lru"|"s3_fifo", "exact": [{"bytes", "miss_ratio"}...], "estimated": [...]}]}``;
  ``exact`` is our memory tier simulated at each size, ``estimated`` our online
  sampled estimator.

For every ``<name>.json`` this runs libCacheSim (through ``compute`` from
``mrc_libcachesim.py``, next to this file; see its docstring for the setup and
the cache-size semantics: byte capacities, no per-object overhead) at the
json's ``sizes`` with LRU and S3FIFO (libCacheSim's defaults: small 10 %,
ghost 90 %, move-to-main threshold 2). Our ``lru`` is compared with
libCacheSim's LRU, our ``s3_fifo`` with libCacheSim's S3FIFO.

``--s3fifo-ours`` adds a third libCacheSim run, S3FIFO with parameters as close
to ours as libCacheSim allows (small queue 3 % of the cache, move to main after
1 hit, ghost 0.5 of the cache: ours keeps hashes of keys evicted from small up
to 50 % of the entry count), reported as policy ``s3fifo(ours' parameters)``
and compared with our ``s3_fifo``. Its ghost is sized in bytes of the evicted
objects, ours in entries, so it is close, not identical.

Output on stdout, Markdown:

1. per (trace, policy): MAE and max |diff| of our exact curve vs libCacheSim,
   and MAE of our estimate vs libCacheSim (request miss ratios, averaged over
   the sizes where libCacheSim gave a value);
2. per (trace, policy): the miss ratios at the smallest, middle and largest
   size for ours-exact, ours-estimated and libCacheSim, to compare shapes.

All the data (every size, every curve, and the metrics) also goes to
``OUTDIR/compare.json``.

Caveat, LRU: mrc_accuracy writes one ``obj_size`` per record, the S3-FIFO
charge (``S3FIFO_ENTRY_OVERHEAD`` 184 + key + value), while our LRU charges
``LRU_ENTRY_OVERHEAD`` 176: our LRU fits ~2.7 % more 299-byte entries than
libCacheSim does at the same budget, so our exact LRU misses a little less
(up to ~0.006 on the sample traces). With the trace's sizes lowered by 8 the
two agree within ~0.0015, ours slightly higher (our LRU promotes lazily).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mrc_libcachesim import compute  # noqa: E402  (needs libcachesim; use the venv's python)

LCS_DEFAULT = types.SimpleNamespace(s3fifo_small_ratio=0.1, s3fifo_ghost_ratio=0.9, s3fifo_move_threshold=2)
LCS_OURS = types.SimpleNamespace(s3fifo_small_ratio=0.03, s3fifo_ghost_ratio=0.5, s3fifo_move_threshold=1)
OURS_S3_NAME = "s3fifo(ours' parameters)"


def libcachesim_curves(trace: str, sizes: list[int], s3fifo_ours: bool) -> dict[str, dict[int, float | None]]:
    """{policy: {size: miss_ratio or None}} from libCacheSim."""
    out: dict[str, dict[int, float | None]] = {}
    res = compute(trace, sizes, ["lru", "s3fifo"], False, LCS_DEFAULT)
    for pol in ("lru", "s3fifo"):
        out[pol] = {p["size"]: p["miss_ratio"] for p in res["policies"][pol]}
    if s3fifo_ours:
        res = compute(trace, sizes, ["s3fifo"], False, LCS_OURS)
        out[OURS_S3_NAME] = {p["size"]: p["miss_ratio"] for p in res["policies"]["s3fifo"]}
    return out


def diff_stats(ours: dict[int, float], ref: dict[int, float | None]) -> tuple[float | None, float | None]:
    """(mean abs diff, max abs diff) over sizes where both have a value."""
    d = [abs(ours[s] - r) for s, r in ref.items() if r is not None and ours.get(s) is not None]
    if not d:
        return None, None
    return sum(d) / len(d), max(d)


def fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", help="directory written by the mrc_accuracy example")
    ap.add_argument("--s3fifo-ours", action="store_true",
                    help="also run libCacheSim S3FIFO with small 0.03, ghost 0.5, move-to-main threshold 1")
    a = ap.parse_args()

    jsons = sorted(p for p in glob.glob(os.path.join(a.outdir, "*.json")) if os.path.basename(p) != "compare.json")
    if not jsons:
        sys.exit(f"no <name>.json in {a.outdir}")

    rows = []  # one per (trace, policy)
    for jpath in jsons:
        with open(jpath) as f:
            ours = json.load(f)
        name = ours.get("trace") or os.path.splitext(os.path.basename(jpath))[0]
        trace = os.path.splitext(jpath)[0] + ".oracleGeneral"
        if not os.path.exists(trace):
            sys.exit(f"{jpath}: missing trace {trace}")
        sizes = [int(s) for s in ours["sizes"]]
        print(f"libCacheSim on {name} ({len(sizes)} sizes)...", file=sys.stderr)
        ref = libcachesim_curves(trace, sizes, a.s3fifo_ours)
        curves = {c["policy"]: c for c in ours["curves"]}
        # (our policy, libCacheSim policy, row label)
        pairs = [("lru", "lru", "lru"), ("s3_fifo", "s3fifo", "s3fifo")]
        if a.s3fifo_ours:
            pairs.append(("s3_fifo", OURS_S3_NAME, OURS_S3_NAME))
        for our_pol, lcs_pol, label in pairs:
            if our_pol not in curves:
                print(f"warning: {name} has no {our_pol} curve", file=sys.stderr)
                continue
            exact = {int(p["bytes"]): p["miss_ratio"] for p in curves[our_pol]["exact"]}
            est = {int(p["bytes"]): p["miss_ratio"] for p in curves[our_pol]["estimated"]}
            mae_x, max_x = diff_stats(exact, ref[lcs_pol])
            mae_e, max_e = diff_stats(est, ref[lcs_pol])
            rows.append({
                "trace": name,
                "policy": label,
                "ours_policy": our_pol,
                "mae_exact_vs_libcachesim": mae_x,
                "max_abs_exact_vs_libcachesim": max_x,
                "mae_estimate_vs_libcachesim": mae_e,
                "max_abs_estimate_vs_libcachesim": max_e,
                "points": [
                    {"bytes": s, "ours_exact": exact.get(s), "ours_estimated": est.get(s),
                     "libcachesim": ref[lcs_pol].get(s)}
                    for s in sizes
                ],
            })

    print("| trace | policy | MAE exact vs lcs | max abs exact vs lcs | MAE estimate vs lcs |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['trace']} | {r['policy']} | {fmt(r['mae_exact_vs_libcachesim'])} | "
              f"{fmt(r['max_abs_exact_vs_libcachesim'])} | {fmt(r['mae_estimate_vs_libcachesim'])} |")
    print()
    print("Miss ratio at the smallest / middle / largest size (exact = ours exact, est = ours estimated, lcs = libCacheSim):")
    print()
    print("| trace | policy | bytes | exact | est | lcs |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        pts = r["points"]
        for p in (pts[0], pts[len(pts) // 2], pts[-1]):
            print(f"| {r['trace']} | {r['policy']} | {p['bytes']} | {fmt(p['ours_exact'])} | "
                  f"{fmt(p['ours_estimated'])} | {fmt(p['libcachesim'])} |")

    out = {
        "outdir": a.outdir,
        "libcachesim_s3fifo_default": vars(LCS_DEFAULT),
        "libcachesim_s3fifo_ours": vars(LCS_OURS) if a.s3fifo_ours else None,
        "rows": rows,
    }
    with open(os.path.join(a.outdir, "compare.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
