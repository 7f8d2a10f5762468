"""Where the stance figure comes from and how much each untried lever could still buy.

    python benchmarks/stance_headroom.py                                   # the shipped model, about 3 min
    python benchmarks/stance_headroom.py --model models/default --model other/run   # and their ensemble

For each model folder, on the seed corpus's dev and test splits, this prints stance macro-F1 and
reference F1 of:

- the encoder side alone, the lexical (TF-IDF) side alone, and the two mixed as the model labels;
- the gold-against-predicted table of stance values, where the errors sit;
- document context: a logistic regression fitted on dev over each paragraph's own stance
  probabilities, then with the model's stance toward the same actor in the document's other
  paragraphs added, then with the *gold* stance of those paragraphs added (an upper bound that
  no document-level feature can pass), each scored on test;
- with two or more folders, each model and the mean of their probabilities (a seed ensemble).

Results also go to ``benchmarks/results/stance_headroom.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stance.data import read_records  # noqa: E402
from stance.inference import Probabilities, decide  # noqa: E402
from stance.labeler import Labeler  # noqa: E402
from stance.metrics import score  # noqa: E402
from stance.train import targets  # noqa: E402

SPLITS = ("dev", "test")


def probabilities(folder: str, corpus: Path) -> tuple[object, dict]:
    """Per split: (records, encoder-only stance, lexical-only stance, stance as labelled)."""
    labeler = Labeler.from_pretrained(folder, backend="torch", progress=False)
    predictor, cb = labeler.predictor, labeler.codebook
    weight = predictor.lexical_weights.get("stance", 0.0)
    out = {}
    for split in SPLITS:
        records = read_records(corpus / f"{split}.jsonl", cb)
        texts, docs = [r.text for r in records], [r.doc_id for r in records]
        mixed = labeler.predict(texts, doc_ids=docs).stance
        saved = predictor.lexical_weights
        predictor.lexical_weights = {**saved, "stance": 0.0}
        try:
            deep = labeler.predict(texts, doc_ids=docs).stance
        finally:
            predictor.lexical_weights = saved
        lexical = predictor.lexical.predict(texts)[1] if predictor.lexical is not None else None
        out[split] = {"records": records, "deep": deep, "lexical": lexical, "mixed": mixed, "weight": weight}
    return cb, out


def figures(cb, records, stance: np.ndarray) -> dict:
    probs = Probabilities(np.zeros((len(records), len(cb.frame_ids)), np.float32), stance, np.ones(len(records)))
    decided, _ = decide(probs, cb, {})
    pred = [{"id": r.id, "stance": st, "frames": []} for r, st in zip(records, decided)]
    s = score([r.to_json() for r in records], pred, cb, n_boot=0)
    return {k: round(s[k]["value"], 4) for k in ("stance_macro_f1", "reference_f1") if s.get(k)}


def gold_values(cb, records) -> np.ndarray:
    return targets(records, cb)[0]


def confusion(cb, records, stance: np.ndarray) -> list[list[int]]:
    n = len(cb.value_ids)
    table = np.zeros((n, n), dtype=int)
    np.add.at(table, (gold_values(cb, records).ravel(), stance.argmax(-1).ravel()), 1)
    return table.tolist()


def document_features(cb, records, stance: np.ndarray, others_stance: np.ndarray | None) -> np.ndarray:
    """Per paragraph and actor: its own log-probabilities, then (unless ``others_stance`` is None)
    the stance toward the same actor over the document's other paragraphs, given the actor is
    referred to there (weighted by how surely it is), and how much it is referred to; plus the
    actor as one-hot."""
    absent = cb.value_ids.index(cb.absent_value)
    n_actors, n_values = stance.shape[1:]
    docs = defaultdict(list)
    for i, r in enumerate(records):
        docs[r.doc_id].append(i)
    rows = []
    for i, r in enumerate(records):
        others = [j for j in docs[r.doc_id] if j != i]
        per_actor = []
        for a in range(n_actors):
            f = list(np.log(stance[i, a] + 1e-4))
            if others_stance is not None:
                if others:
                    q = others_stance[others, a]
                    referred = 1.0 - q[:, absent]
                    given = q / np.clip(referred[:, None], 1e-4, None)
                    mean = (referred[:, None] * given).sum(0) / (referred.sum() + 1e-4)
                    mean[absent] = 0.0
                    f += list(np.log(mean + 0.02)) + [np.log1p(referred.sum()), 1.0]
                else:
                    f += [0.0] * n_values + [0.0, 0.0]
            per_actor.append(f + list(np.eye(n_actors)[a]))
        rows.append(per_actor)
    return np.asarray(rows, dtype=np.float64)


def document_context(cb, runs: dict) -> dict:
    """Test figures of a stacker fitted on dev: without document context, with the model's own
    reading of the other paragraphs, and with their gold labels."""
    from sklearn.linear_model import LogisticRegression

    dev, test = runs["dev"], runs["test"]
    n_values = len(cb.value_ids)

    def gold_probs(split):
        return np.eye(n_values)[gold_values(cb, split["records"])] * 0.98 + 0.005

    variants = {"own probabilities only": lambda s: None, "+ model's reading of the other paragraphs": lambda s: s["mixed"],
                "+ gold labels of the other paragraphs (upper bound)": gold_probs}
    out = {}
    for name, others in variants.items():
        x_dev = document_features(cb, dev["records"], dev["mixed"], others(dev))
        x_test = document_features(cb, test["records"], test["mixed"], others(test))
        fit = LogisticRegression(C=0.1, max_iter=3000).fit(x_dev.reshape(-1, x_dev.shape[-1]),
                                                          gold_values(cb, dev["records"]).ravel())
        p = np.zeros(test["mixed"].shape)
        p[..., fit.classes_] = fit.predict_proba(x_test.reshape(-1, x_test.shape[-1])).reshape(
            *test["mixed"].shape[:2], -1)
        out[name] = figures(cb, test["records"], p)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", help="a model folder (repeat for an ensemble); default models/default")
    p.add_argument("--corpus", default=str(ROOT / "seeds" / "corpus"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "stance_headroom.json"))
    args = p.parse_args()
    folders = args.model or [str(ROOT / "models" / "default")]
    corpus = Path(args.corpus)

    result = {"machine": f"{platform.machine()}, {platform.python_version()}", "models": {}}
    loaded = []
    for folder in folders:
        cb, runs = probabilities(folder, corpus)
        loaded.append(runs)
        entry = {}
        for split in SPLITS:
            r = runs[split]
            entry[split] = {"encoder only": figures(cb, r["records"], r["deep"]),
                            "lexical only": figures(cb, r["records"], r["lexical"]) if r["lexical"] is not None else None,
                            f"mixed as labelled (lexical weight {r['weight']})": figures(cb, r["records"], r["mixed"]),
                            "gold rows, predicted columns": confusion(cb, r["records"], r["mixed"])}
        entry["document context (fitted on dev, scored on test)"] = document_context(cb, runs)
        result["models"][folder] = entry
        print(f"\n== {folder}")
        for split in SPLITS:
            print(f"-- {split}: stance macro-F1 / reference F1")
            for name, figs in entry[split].items():
                if name.startswith("gold rows"):
                    print(f"   {name} ({', '.join(cb.value_ids)}):")
                    for value, row in zip(cb.value_ids, figs):
                        print(f"     {value:>8}: {row}")
                elif figs:
                    print(f"   {name:<45} {figs['stance_macro_f1']:.3f} / {figs['reference_f1']:.3f}")
        print("-- document context, stacker fitted on dev, test figures:")
        for name, figs in entry["document context (fitted on dev, scored on test)"].items():
            print(f"   {name:<55} {figs['stance_macro_f1']:.3f} / {figs['reference_f1']:.3f}")
    if len(loaded) > 1:
        result["ensemble"] = {}
        print(f"\n== mean of {len(loaded)} models' probabilities")
        for split in SPLITS:
            mean = np.mean([runs[split]["mixed"] for runs in loaded], axis=0)
            figs = figures(cb, loaded[0][split]["records"], mean)
            result["ensemble"][split] = figs
            print(f"   {split:<5} {figs['stance_macro_f1']:.3f} / {figs['reference_f1']:.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
