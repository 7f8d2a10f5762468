"""How seeds/corpus/ was assembled from the writers' batch files (kept for the record).

    python seeds/tools/make_splits.py --main BATCH.jsonl... --test BATCH.jsonl... --out seeds/corpus

The test split is the separately written test batch, whole. The main batches are split by
document into train and dev. Dev is chosen to look like real published text (design.md: about
half the paragraphs with no frame; among referred actors mostly neutral, then against, rarely
favor), so that early stopping and frame thresholds are tuned on a realistic distribution;
the documents richer in rare values stay in train, where the model needs them.
"""
from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter, defaultdict
from pathlib import Path

# design.md, "What real text looks like"
REAL_FRAME_SHARE = {"isolation": 0.26, "resentment": 0.12, "grand_bargain": 0.12, "__none__": 0.50}
REAL_STANCE_SHARE = {"neutral": 0.74, "against": 0.19, "favor": 0.07}


def read(paths) -> list[dict]:
    rows = []
    for p in paths:
        rows += [json.loads(line) for line in Path(p).read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows


def profile(rows: list[dict]) -> tuple[dict, dict]:
    n = max(len(rows), 1)
    frames = Counter(f for r in rows for f in r["frames"])
    frame_share = {f: frames[f] / n for f in REAL_FRAME_SHARE if f != "__none__"}
    frame_share["__none__"] = sum(1 for r in rows if not r["frames"]) / n
    values = Counter(v for r in rows for v in r["stance"].values() if v != "none")
    total = max(sum(values.values()), 1)
    return frame_share, {v: values[v] / total for v in REAL_STANCE_SHARE}


def distance(rows: list[dict]) -> float:
    frames, stance = profile(rows)
    return (sum((frames[k] - v) ** 2 for k, v in REAL_FRAME_SHARE.items())
            + sum((stance[k] - v) ** 2 for k, v in REAL_STANCE_SHARE.items()))


def choose_dev(docs: dict[str, list[dict]], share: float, seed: int) -> set[str]:
    """Greedy: add the document that brings dev closest to real text, one voice at a time."""
    rng = random.Random(seed)
    total = sum(len(v) for v in docs.values())
    by_voice = defaultdict(list)
    for d, rows in docs.items():
        by_voice[rows[0].get("voice", "?")].append(d)
    for ds in by_voice.values():
        rng.shuffle(ds)
    voices = sorted(by_voice)
    chosen, rows = set(), []
    while len(rows) < share * total:
        progressed = False
        for voice in voices:  # round robin over voices keeps dev as varied as the corpus
            candidates = [d for d in by_voice[voice] if d not in chosen][:8]
            if not candidates or len(rows) >= share * total:
                continue
            best = min(candidates, key=lambda d: distance(rows + docs[d]))
            chosen.add(best)
            rows += docs[best]
            progressed = True
        if not progressed:
            break
    return chosen


def _shingles(text: str, n: int = 5) -> set:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def near_duplicates(splits: dict[str, list[dict]], threshold: float = 0.3) -> list[tuple[str, str, float]]:
    """Pairs of paragraphs in different splits sharing at least ``threshold`` of the shorter
    one's word 5-grams (the same wire sentence reused, a quote retold in near-identical words)."""
    split_of, grams, index = {}, {}, defaultdict(set)
    for name, rows in splits.items():
        for r in rows:
            split_of[r["id"]] = name
            grams[r["id"]] = _shingles(r["text"])
            for g in grams[r["id"]]:
                index[g].add(r["id"])
    shared = Counter()
    for ids in index.values():
        ids = sorted(ids)
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                if split_of[a] != split_of[b]:
                    shared[(a, b)] += 1
    out = []
    for (a, b), k in shared.items():
        ratio = k / max(1, min(len(grams[a]), len(grams[b])))
        if ratio >= threshold:
            out.append((a, b, ratio))
    return out


def drop_leaks(splits: dict[str, list[dict]], keep: frozenset = frozenset()) -> list[str]:
    """Remove near-duplicates across splits, always from the larger split's side (train before
    dev before test) unless that paragraph is in ``keep`` (then from the other side), and drop a
    document that falls below three paragraphs."""
    rank = {"train": 0, "dev": 1, "test": 2}
    split_of = {r["id"]: name for name, rows in splits.items() for r in rows}
    dropped = set()
    for a, b, _ in near_duplicates(splits):
        first, second = (a, b) if rank[split_of[a]] < rank[split_of[b]] else (b, a)
        dropped.add(second if first in keep else first)
    for name in splits:
        rows = [r for r in splits[name] if r["id"] not in dropped]
        sizes = Counter(r["doc_id"] for r in rows)
        small = {d for d, n in sizes.items() if n < 3}
        dropped |= {r["id"] for r in rows if r["doc_id"] in small}
        splits[name] = [r for r in rows if r["doc_id"] not in small]
    return sorted(dropped)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--main", nargs="+", required=True)
    p.add_argument("--test", nargs="+", required=True)
    p.add_argument("--out", default="seeds/corpus")
    p.add_argument("--dev-share", type=float, default=0.176, help="of the main batches (15%% of the whole)")
    p.add_argument("--seed", type=int, default=2026)
    args = p.parse_args()
    main_rows, test_rows = read(args.main), read(args.test)
    docs = defaultdict(list)
    for r in main_rows:
        docs[r["doc_id"]].append(r)
    dev = choose_dev(docs, args.dev_share, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    splits = {"train": [r for r in main_rows if r["doc_id"] not in dev],
              "dev": [r for r in main_rows if r["doc_id"] in dev], "test": test_rows}
    dropped = drop_leaks(splits)
    print(f"dropped {len(dropped)} paragraphs that near-duplicate a paragraph of another split: {dropped}")
    for name, rows in splits.items():
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({**r, "split": name}, ensure_ascii=False) + "\n")
        frames, stance = profile(rows)
        print(f"{name}: {len({r['doc_id'] for r in rows})} docs, {len(rows)} paragraphs; "
              f"frames {({k: round(v, 2) for k, v in frames.items()})}; stance {({k: round(v, 2) for k, v in stance.items()})}")


if __name__ == "__main__":
    main()
