"""One annotation round, end to end, with the commands a researcher runs.

    python benchmarks/annotation_round.py [--start 400] [--batch 200] [--epochs 3]

1. Train a first model on a small annotated start set (part of the seed training split).
2. `stance suggest`: the model picks the paragraphs it is least sure of from the rest of the
   training split, as Label Studio tasks.
3. Annotate: simulated here by filling each task with its held-out gold labels, in Label Studio's
   export format, by two "annotators" (the second disagrees on a few items).
4. `stance import --from labelstudio --split-by-annotator`, then `stance agreement` on the passes
   (with the model as one more coder).
5. Retrain on the start set plus the new annotations, and score both models on the dev split.

It prints the commands and the scores before and after. Everything runs through the CLI, so the
round is exactly what a researcher would do, only with gold labels in place of a person.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "seeds" / "corpus"


def run(*args: str) -> str:
    cmd = [sys.executable, "-m", "stance.cli", *args]
    print("$ stance " + " ".join(args), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout, done.stderr)
        raise SystemExit(done.returncode)
    return done.stdout


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def annotate(tasks: list[dict], gold: dict[str, dict], annotator: int, rng: random.Random, noise: float) -> list[dict]:
    """Label Studio export: each task answered with its gold labels (a few changed by `noise`)."""
    out = []
    for k, task in enumerate(tasks):
        g = gold[task["data"]["id"]]
        stance = dict(g["stance"])
        if rng.random() < noise:  # a second coder who reads one actor differently
            actor = rng.choice(sorted(stance))
            stance[actor] = "neutral" if stance[actor] != "neutral" else "against"
        result = [{"from_name": f"stance_{a}", "to_name": "text", "type": "choices", "value": {"choices": [v]}}
                  for a, v in stance.items()]
        result.append({"from_name": "frames", "to_name": "text", "type": "choices",
                       "value": {"choices": list(g["frames"])}})
        out.append({**task, "id": k + 1, "annotations": [{"id": 1000 * annotator + k, "completed_by": annotator,
                                                           "result": result, "was_cancelled": False}]})
    return out


def headline(path: Path) -> dict:
    s = json.loads(path.read_text())
    return {k: round(s[k]["value"], 3) for k in ("frames_macro_f1", "stance_macro_f1", "reference_f1")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--start", type=int, default=400, help="paragraphs in the first annotated set")
    p.add_argument("--batch", type=int, default=200, help="paragraphs to suggest and annotate")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=13)
    args = p.parse_args()
    rng = random.Random(args.seed)
    train = read(CORPUS / "train.jsonl")
    docs = sorted({r["doc_id"] for r in train})
    rng.shuffle(docs)
    start_docs, n = set(), 0
    for d in docs:
        if n >= args.start:
            break
        start_docs.add(d)
        n += sum(1 for r in train if r["doc_id"] == d)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = write(tmp / "start.jsonl", [r for r in train if r["doc_id"] in start_docs])
        pool = write(tmp / "pool.jsonl", [{"id": r["id"], "doc_id": r["doc_id"], "text": r["text"]}
                                          for r in train if r["doc_id"] not in start_docs])
        gold = {r["id"]: r for r in train}
        dev = str(CORPUS / "dev.jsonl")
        common = ["--epochs", str(args.epochs), "--seed", str(args.seed), "--no-baselines", "--n-boot", "200"]
        run("train", "--train", str(start), "--dev", dev, "--out", str(tmp / "before"), *common)
        run("evaluate", "--model", str(tmp / "before"), "--data", dev, "--n-boot", "200",
            "--json-out", str(tmp / "before.json"))
        run("suggest", str(pool), "--model", str(tmp / "before"), "-n", str(args.batch), "--to", "labelstudio",
            "-o", str(tmp / "tasks.json"))
        tasks = json.loads((tmp / "tasks.json").read_text())
        export = annotate(tasks, gold, 1, rng, 0.0) + annotate(tasks, gold, 2, rng, 0.08)
        (tmp / "export.json").write_text(json.dumps(export))
        run("import", str(tmp / "export.json"), "--from", "labelstudio", "--split-by-annotator", str(tmp / "passes"))
        passes = sorted(str(p) for p in (tmp / "passes").glob("*.jsonl"))
        print(run("agreement", *passes, "--model", str(tmp / "before"), "--disagreements", str(tmp / "dis.jsonl")))
        run("train", "--train", str(start), passes[0], "--dev", dev, "--out", str(tmp / "after"), *common)
        run("evaluate", "--model", str(tmp / "after"), "--data", dev, "--n-boot", "200",
            "--json-out", str(tmp / "after.json"))
        before, after = headline(tmp / "before.json"), headline(tmp / "after.json")
    print(f"\nstart set {n} paragraphs, +{len(tasks)} suggested and annotated; scored on dev")
    print(f"{'':22}{'frames F1':>10}{'stance F1':>11}{'reference F1':>14}")
    for name, s in (("before the round", before), ("after the round", after)):
        print(f"{name:22}{s['frames_macro_f1']:>10.3f}{s['stance_macro_f1']:>11.3f}{s['reference_f1']:>14.3f}")
    print(f"({(time.time() - started) / 60:.1f} min)")


if __name__ == "__main__":
    main()
