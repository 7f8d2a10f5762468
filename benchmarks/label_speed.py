"""Labelling speed, start-up time, memory and int8 agreement, for each backend.

    python benchmarks/label_speed.py                 # 5,000 paragraphs per backend, 100,000 for memory
    python benchmarks/label_speed.py --n 2000 --big 0   # quicker, no 100k memory run

Each backend runs in a fresh process, so its start-up time (import plus model load) and peak
memory (max RSS) are its own. Paragraphs are the seed corpus's dev and test splits (held out from
training, so the model is as unsure of them as of new text, which is what the int8 recheck's cost
depends on), cycled to the requested count; lengths are those of real-looking news paragraphs. Every actor and frame is labelled.
The int8 backend rechecks its close calls in fp32 (``--int8-recheck``, the library's default margin
unless given); the share it rechecked is printed, and its agreement with fp32 with and without them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "seeds" / "corpus"
TIMING_SPLITS = "dev+test"


def corpus_texts(split: str | None = None) -> tuple[list[str], list[str]]:
    """Texts and their document ids, documents whole and in order (so document context is read).
    ``split``: one split, several joined by '+', or None for every split."""
    files = [CORPUS / f"{s}.jsonl" for s in split.split("+")] if split else sorted(CORPUS.glob("*.jsonl"))
    texts, doc_ids = [], []
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                texts.append(record["text"])
                doc_ids.append(record["doc_id"])
    return texts, doc_ids


def worker(args) -> None:
    """Runs in a child process: time import + load, then label, print one JSON line."""
    t0 = time.perf_counter()
    from stance import Labeler

    labeler = Labeler.from_pretrained(args.model, backend=args.backend, batch_size=args.batch_size,
                                      progress=False, log=lambda m: None, recheck=args.int8_recheck)
    load = time.perf_counter() - t0
    texts, doc_ids = corpus_texts(TIMING_SPLITS)
    repeat = args.n // len(texts) + 1
    texts, doc_ids = (texts * repeat)[: args.n], (doc_ids * repeat)[: args.n]
    labeler.rows(texts[:64], doc_ids=doc_ids[:64])  # warm-up
    t1 = time.perf_counter()
    before = dict(labeler.predictor.counts)
    rows = labeler.rows(texts, doc_ids=doc_ids)
    seconds = time.perf_counter() - t1
    rechecked = (labeler.predictor.counts["rechecked"] - before["rechecked"]) / len(rows)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the agreement runs below
    decisions = None
    if args.decisions:
        decisions = {}
        # the int8 backend without its fp32 recheck, for the agreement of plain dynamic int8
        plain = (Labeler.from_pretrained(args.model, backend=args.backend, progress=False, log=lambda m: None,
                                         recheck=0.0) if args.backend == "onnx-int8" else None)
        for split in ("dev", "test"):
            split_texts, split_docs = corpus_texts(split)
            for name, lab in (("", labeler), (" plain", plain)):
                if lab is not None:
                    decisions[split + name] = [{k: v for k, v in r.items() if k.startswith(("stance_", "frame_"))}
                                               for r in lab.rows(split_texts, doc_ids=split_docs)]
    tokens = [len(labeler.encoder.tokenizer.encode(t).ids) for t in texts[:2000]]
    print(json.dumps({"backend": args.backend, "load_s": load, "n": len(rows), "seconds": seconds,
                      "per_s": len(rows) / seconds, "rechecked": rechecked, "median_tokens": statistics.median(tokens),
                      "max_rss_mb": peak_mb,
                      "decisions": decisions}))


def _child(extra: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", *extra], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def agreement(a: list[dict], b: list[dict]) -> tuple[float, float]:
    stance = [ra[k] == rb[k] for ra, rb in zip(a, b) for k in ra if k.startswith("stance_")]
    frames = [ra[k] == rb[k] for ra, rb in zip(a, b) for k in ra if k.startswith("frame_")]
    return sum(stance) / len(stance), sum(frames) / len(frames)


def big_run(model: str, n: int, backend: str) -> dict:
    """`stance label` over n paragraphs from a JSONL file: peak memory of the whole job."""
    texts, doc_ids = corpus_texts(TIMING_SPLITS)
    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / "big.jsonl"
        with open(inp, "w", encoding="utf-8") as f:
            for i in range(n):
                f.write(json.dumps({"id": i, "doc_id": f"{doc_ids[i % len(texts)]}-{i // len(texts)}",
                                    "text": texts[i % len(texts)], "outlet": "x"}) + "\n")
        out = Path(tmp) / "out.jsonl"
        t = time.perf_counter()
        # a child of its own, so its peak memory is not mixed with the other runs'
        code = ("import resource, sys; from stance.cli import main; rc = main(sys.argv[1:]); "
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024); sys.exit(rc)")
        done = subprocess.run([sys.executable, "-c", code, "label", str(inp), "-o", str(out), "--model", model,
                               "--backend", backend, "--no-progress"], check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - t
        peak = float(done.stdout.strip().splitlines()[-1])
        rows = sum(1 for _ in open(out, encoding="utf-8"))
    return {"n": rows, "seconds": seconds, "per_s": rows / seconds, "max_rss_mb": peak}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "models" / "default"))
    p.add_argument("--n", type=int, default=5000, help="paragraphs per backend")
    p.add_argument("--big", type=int, default=100_000, help="paragraphs for the memory run (0: skip)")
    p.add_argument("--big-backend", default="onnx-int8")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--backends", nargs="+", default=["torch", "onnx", "onnx-int8"])
    p.add_argument("--int8-recheck", type=float, default=None,
                   help="margin of the int8 backend's fp32 recheck (default: the library's; 0: none)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--backend", help=argparse.SUPPRESS)
    p.add_argument("--decisions", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    # export and quantise once before timing, so start-up is measured with the cache in place; in a
    # child process, because Linux carries a parent's peak RSS into the children it forks
    for b in args.backends:
        if b != "torch":
            subprocess.run([sys.executable, "-c", "import sys; from stance import Labeler; "
                            "Labeler.from_pretrained(sys.argv[1], backend=sys.argv[2], log=lambda m: None)",
                            args.model, b], check=True, capture_output=True)
    results = {}
    for b in args.backends:
        extra = ["--model", args.model, "--backend", b, "--n", str(args.n), "--batch-size", str(args.batch_size)]
        if b in ("onnx", "onnx-int8"):
            extra.append("--decisions")
        if args.int8_recheck is not None:
            extra += ["--int8-recheck", str(args.int8_recheck)]
        results[b] = _child(extra)
    print(f"\n{args.n} paragraphs per backend (median {results[args.backends[0]]['median_tokens']:.0f} tokens), "
          f"batch size {args.batch_size}, every actor and frame labelled\n")
    print(f"{'backend':<10} {'paragraphs/s':>13} {'import+load s':>14} {'peak RSS MB':>12} {'rechecked fp32':>15}")
    for b, r in results.items():
        share = f"{r['rechecked']:.1%}" if b == "onnx-int8" else "-"
        print(f"{b:<10} {r['per_s']:>13.1f} {r['load_s']:>14.2f} {r['max_rss_mb']:>12.0f} {share:>15}")
    if "onnx" in results and "onnx-int8" in results:
        print()
        fp32, int8 = results["onnx"]["decisions"], results["onnx-int8"]["decisions"]
        for name, splits in (("test", ["test"]), ("dev", ["dev"]), ("dev+test", ["dev", "test"])):
            a = [r for sp in splits for r in fp32[sp]]
            s, f = agreement(a, [r for sp in splits for r in int8[sp]])
            s0, f0 = agreement(a, [r for sp in splits for r in int8[sp + " plain"]])
            print(f"int8 vs fp32 on the seed {name} split ({len(a)} paragraphs): stance decisions agree {s:.2%}, "
                  f"frame decisions agree {f:.2%} (without the fp32 recheck: {s0:.2%}, {f0:.2%})")
    if args.big:
        r = big_run(args.model, args.big, args.big_backend)
        print(f"\nstance label, {r['n']} paragraphs, {args.big_backend}: {r['per_s']:.1f} paragraphs/s end to end, "
              f"peak RSS {r['max_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
