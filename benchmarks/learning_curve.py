"""How the default recipe's scores grow with training data: a learning curve.

    python benchmarks/learning_curve.py                      # 25% and 50% of train, about 20 min
    python benchmarks/learning_curve.py --fractions 0.1 0.25 0.5 1.0

For each fraction, whole documents of the seed corpus's train split are drawn at random (seeded)
until that share of its paragraphs is reached; the model is trained with the shipped model's recipe
(the README's rebuild command: character n-grams, no dropout, bf16, LoRA in the top three
layers; ``--epochs`` and ``--seed`` default to its values) and early-stopped on the full dev split; the model and the TF-IDF + logistic-regression baseline trained on the same subset are
scored on the full test split. The table answers a researcher's planning question (how much
annotation buys how much quality) and shows whether the margin over TF-IDF grows with data.
Results also go to ``benchmarks/results/learning_curve.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stance.codebook import Codebook  # noqa: E402
from stance.data import read_records, write_records  # noqa: E402
from stance.train import TrainConfig, train_to_folder  # noqa: E402

FIGURES = ("frames_macro_f1", "stance_macro_f1", "reference_f1")


def subsample(records, fraction: float, seed: int):
    """Whole documents, in random order, until ``fraction`` of the paragraphs is reached."""
    docs = defaultdict(list)
    for r in records:
        docs[r.doc_id].append(r)
    order = sorted(docs)
    random.Random(seed).shuffle(order)
    target, chosen, n = fraction * len(records), set(), 0
    for d in order:
        if n >= target:
            break
        chosen.add(d)
        n += len(docs[d])
    return [r for r in records if r.doc_id in chosen]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5])
    p.add_argument("--corpus", default=str(ROOT / "seeds" / "corpus"))
    p.add_argument("--codebook", default=str(ROOT / "seeds" / "codebook.yaml"))
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "learning_curve.json"))
    args = p.parse_args()
    for f in args.fractions:
        if not 0 < f <= 1:
            p.error(f"--fractions: {f} is not in (0, 1]")

    codebook = Codebook.load(args.codebook)
    corpus = Path(args.corpus)
    train = read_records(corpus / "train.jsonl", codebook)
    dev, test = corpus / "dev.jsonl", corpus / "test.jsonl"
    rows = []
    print(f"{'train paragraphs':>16}  {'system':<10} " + "  ".join(f"{k:>22}" for k in FIGURES), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for fraction in sorted(args.fractions):
            subset = subsample(train, fraction, args.seed)
            path = Path(tmp) / f"train_{fraction}.jsonl"
            write_records(subset, path)
            config = TrainConfig(epochs=args.epochs, seed=args.seed, lexical_char_ngrams=(2, 5), lora_dropout=0.0,
                                 attention_dropout=0.0, bf16=True, lora_layers=3, progress=False)
            started = time.time()
            out = train_to_folder([path], [dev], Path(tmp) / f"model_{fraction}", codebook, config,
                                  test_paths=[test], n_boot=args.n_boot, log=lambda m: None)
            seconds = time.time() - started
            systems = json.loads((out / "evaluation.json").read_text())["evaluations"]["test split"]
            for name in ("this model", "tfidf_lr"):
                figures = {k: systems[name][k] for k in FIGURES if systems[name].get(k)}
                rows.append({"fraction": fraction, "n_train": len(subset),
                             "n_documents": len({r.doc_id for r in subset}), "system": name,
                             "seconds": round(seconds, 1), **figures})
                print(f"{len(subset):>16}  {name:<10} " + "  ".join(
                    f"{figures[k]['value']:.3f} [{figures[k]['low']:.3f}, {figures[k]['high']:.3f}]" for k in FIGURES),
                    flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": platform.platform(), "epochs": args.epochs, "seed": args.seed,
                                          "rows": rows}, indent=1) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
