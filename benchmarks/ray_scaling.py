"""Paragraphs per second on Ray with 1 and 2 single-thread workers, against the local engine.

    python benchmarks/ray_scaling.py                  # 4,000 paragraphs, the shipped model, torch
    python benchmarks/ray_scaling.py --n 300          # a quick check that everything runs
    python benchmarks/ray_scaling.py --backend onnx-int8 --json ray_scaling.json

Runs ``stance label`` four ways over the same JSONL of seed-corpus paragraphs (cycled to ``--n``,
so lengths are those of real-looking news paragraphs): the local engine with 1 and with 2 threads,
then ``--engine ray`` on a local cluster with 1 and with 2 workers of one thread each. Times are
wall-clock for the whole run (model loading included; the cluster's own start is timed apart);
for Ray also the rate once the workers are up (after the start-up the run reports) and each
worker's own rate while labelling, the figure to multiply by the workers of a bigger cluster. Every
Ray output is then compared row by row with the local 1-thread output: the same ids in the same
order, the same stance and frame decisions, probabilities within 1e-4 (their rounding step), and
whether the files are byte for byte the same. Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from label_speed import corpus_texts  # noqa: E402  (the same paragraphs as the speed benchmark)


def quiet(message: str) -> None:
    pass


def compare(local: Path, other: Path) -> dict:
    """Row by row: ids and order, decisions, the largest probability difference, identical bytes."""
    a, b = pd.read_json(local, lines=True, dtype=False), pd.read_json(other, lines=True, dtype=False)
    same_ids = a["id"].tolist() == b["id"].tolist()
    decisions = ["stance", "frames", "windows", "english"]
    differing = int(sum((a[c].astype(str) != b[c].astype(str)).sum() for c in decisions)) if same_ids else None
    diff = 0.0
    for c in ("stance_scores", "frame_scores"):
        left, right = pd.json_normalize(a[c].tolist()), pd.json_normalize(b[c].tolist())
        diff = max(diff, float((left - right).abs().to_numpy().max()))
    return {"rows": len(b), "same_ids_in_order": same_ids, "decisions_differing": differing,
            "max_probability_diff": diff, "identical_bytes": local.read_bytes() == other.read_bytes()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="paragraphs (the seed corpus, cycled)")
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--chunk-size", type=int, default=128, help="paragraphs per call to a worker")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    from stance.distributed import run_label_ray
    from stance.labeling import run_label

    texts, doc_ids = corpus_texts()
    repeat = args.n // len(texts) + 1
    texts, doc_ids = (texts * repeat)[: args.n], (doc_ids * repeat)[: args.n]
    work = Path(tempfile.mkdtemp(prefix="ray_scaling-"))
    corpus = work / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"p{i}", "doc_id": d, "text": t}) + "\n"
                              for i, (t, d) in enumerate(zip(texts, doc_ids))), encoding="utf-8")
    common = dict(model=args.model, backend=args.backend, chunk_size=args.chunk_size, progress=False, log=quiet)
    results: dict = {"n": args.n, "backend": args.backend, "chunk_size": args.chunk_size, "cpus": os.cpu_count(),
                     "machine": platform.processor() or platform.machine(), "runs": {}}

    def record(name: str, summary: dict, seconds: float) -> None:
        run = {"seconds": round(seconds, 1), "per_s": round(args.n / seconds, 1)}
        line = f"{name:<18} {run['per_s']:7.1f} paragraphs/s  ({run['seconds']} s"
        if "start_s" in summary:  # the rate once the workers are up, and each worker's own rate
            run["start_s"] = summary["start_s"]
            run["after_start_per_s"] = round(args.n / max(seconds - summary["start_s"], 1e-9), 1)
            run["per_worker_per_s"] = [round(w["paragraphs"] / w["busy_s"], 1) for w in summary["workers"]]
            line += (f"; {run['after_start_per_s']:.1f}/s after {run['start_s']} s of start-up; per worker "
                     f"{', '.join(map(str, run['per_worker_per_s']))}/s while labelling")
        results["runs"][name] = run
        print(line + ")", flush=True)

    for threads in (1, 2):
        t = time.perf_counter()
        summary = run_label([str(corpus)], str(work / f"local-{threads}.jsonl"), threads=threads, **common)
        record(f"local, {threads} thread{'s' * (threads > 1)}", summary, time.perf_counter() - t)

    import ray

    t = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    results["cluster_start_s"] = round(time.perf_counter() - t, 1)
    try:
        for workers in (1, 2):
            t = time.perf_counter()
            summary = run_label_ray([str(corpus)], str(work / f"ray-{workers}.jsonl"), workers=workers, threads=1,
                                    shard_size=args.chunk_size * 8, **common)
            record(f"ray, {workers} worker{'s' * (workers > 1)}", summary, time.perf_counter() - t)
    finally:
        ray.shutdown()

    runs = results["runs"]
    one, two = runs["ray, 1 worker"], runs["ray, 2 workers"]
    results["speedup_2_over_1_workers"] = round(two["per_s"] / one["per_s"], 2)
    if "after_start_per_s" in one and "after_start_per_s" in two:
        results["speedup_2_over_1_workers_after_start"] = round(two["after_start_per_s"]
                                                                / one["after_start_per_s"], 2)
    local_one, local_two = runs["local, 1 thread"], runs["local, 2 threads"]
    results["speedup_local_2_over_1_threads"] = round(local_two["per_s"] / local_one["per_s"], 2)
    results["compared_with_local_1_thread"] = {w: compare(work / "local-1.jsonl", work / f"ray-{w}.jsonl")
                                               for w in (1, 2)}
    print(f"\ncluster start {results['cluster_start_s']} s (not in the times above)")
    print(f"2 workers / 1 worker: {results['speedup_2_over_1_workers']}x end to end"
          + (f", {results['speedup_2_over_1_workers_after_start']}x once started"
             if "speedup_2_over_1_workers_after_start" in results else ""))
    print(f"local 2 threads / 1 thread: {results['speedup_local_2_over_1_threads']}x")
    for w, c in results["compared_with_local_1_thread"].items():
        print(f"ray {w} worker(s) vs local 1 thread: {c['rows']} rows, same ids in order {c['same_ids_in_order']}, "
              f"{c['decisions_differing']} decisions differ, largest probability difference "
              f"{c['max_probability_diff']:.0e}, identical bytes {c['identical_bytes']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print(f"outputs in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
