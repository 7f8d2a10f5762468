"""Add a double-annotated, adjudicated batch to seeds/corpus/ (kept for the record).

    python seeds/tools/add_batch.py --main S4.jsonl ... --test T3.jsonl ... \
        --pass-b S4.passb.jsonl ... --decisions adj_0.out.jsonl ...

Each batch file is the writer's: whole documents with metadata, labelled as written (pass A).
``--pass-b`` files hold an independent annotator's labels of the same paragraphs ({id, stance,
frames}); ``--decisions`` the adjudicator's choice for every field on which the two differ
({id, field, decision, note}). The gold label is pass A where the passes agree and the decision
where they do not; a disagreement without a decision is an error, not a silent default.

Test batches (written apart) go to test whole. The main batches' documents are split into train
and dev; dev documents are chosen as in ``make_splits.py`` (greedily, to look like real text) and
just enough of them to bring the whole corpus back to about 70/15/15. A new paragraph that
near-duplicates a paragraph of another split (30% of word 5-grams) is left out; so is a document
that falls below three paragraphs. Existing corpus lines are never changed. Pass A, pass B and
the adjudication are appended to seeds/agreement/.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_splits import choose_dev, drop_leaks, profile, read  # noqa: E402

ACTORS = ("putin", "trump", "russia", "ukraine", "west")
FRAMES = ("isolation", "resentment", "grand_bargain")
ORDER = ("id", "doc_id", "text", "stance", "frames", "outlet", "date", "genre", "perspective", "voice",
         "headline", "hard_negative", "split")


def fields(row: dict) -> dict[str, str]:
    out = {f"stance:{a}": row["stance"][a] for a in ACTORS}
    out.update({f"frame:{f}": "present" if f in row["frames"] else "absent" for f in FRAMES})
    return out


def apply(row: dict, values: dict[str, str]) -> dict:
    stance = {a: values[f"stance:{a}"] for a in ACTORS}
    frames = [f for f in FRAMES if values[f"frame:{f}"] == "present"]
    return {**row, "stance": stance, "frames": frames}


def append_lines(rows, path: Path) -> None:
    with open(path, "a", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--main", nargs="+", required=True)
    p.add_argument("--test", nargs="*", default=[], help="batches written apart for test (none: test unchanged)")
    p.add_argument("--pass-b", nargs="+", required=True)
    p.add_argument("--decisions", nargs="+", required=True)
    p.add_argument("--corpus", default="seeds/corpus")
    p.add_argument("--agreement", default="seeds/agreement")
    p.add_argument("--dev-target", type=float, default=0.15, help="dev's share of the whole corpus")
    p.add_argument("--seed", type=int, default=2026)
    args = p.parse_args()
    corpus, agreement = Path(args.corpus), Path(args.agreement)

    main_rows, test_rows = read(args.main), read(args.test)
    rows = main_rows + test_rows
    pass_b = {r["id"]: r for r in read(args.pass_b)}
    decisions = {(d["id"], d["field"]): d for d in read(args.decisions)}
    missing_b = [r["id"] for r in rows if r["id"] not in pass_b]
    if missing_b:
        sys.exit(f"pass B lacks {len(missing_b)} paragraphs, e.g. {missing_b[:5]}")

    gold, adjudication, n_fields = {}, [], 0
    for r in rows:
        fa, fb = fields(r), fields(pass_b[r["id"]])
        values = dict(fa)
        for k in fa:
            n_fields += 1
            if fa[k] == fb[k]:
                continue
            d = decisions.get((r["id"], k))
            if d is None or d["decision"] not in (fa[k], fb[k]):
                sys.exit(f"{r['id']} {k}: passes differ ({fa[k]} / {fb[k]}) and no valid decision")
            values[k] = d["decision"]
            adjudication.append({"id": r["id"], "field": k, "pass_a": fa[k], "pass_b": fb[k],
                                 "decision": d["decision"], "note": d.get("note", "")})
        gold[r["id"]] = apply(r, values)
    print(f"fields {n_fields}, disagreements {len(adjudication)} ({len(adjudication) / n_fields:.1%})")

    existing = {name: read([corpus / f"{name}.jsonl"]) for name in ("train", "dev", "test")}
    total = sum(len(v) for v in existing.values()) + len(rows)
    dev_needed = max(0, args.dev_target * total - len(existing["dev"]))
    docs = defaultdict(list)
    for r in main_rows:
        docs[r["doc_id"]].append(gold[r["id"]])
    dev = choose_dev(docs, dev_needed / max(1, len(main_rows)), args.seed)
    new = {"train": [gold[r["id"]] for r in main_rows if r["doc_id"] not in dev],
           "dev": [gold[r["id"]] for r in main_rows if r["doc_id"] in dev],
           "test": [gold[r["id"]] for r in test_rows]}

    # near-duplicates, against the existing corpus and between the new splits: only new lines go
    both = {name: existing[name] + new[name] for name in new}
    old_ids = frozenset(r["id"] for rs in existing.values() for r in rs)
    dropped = set(drop_leaks(both, keep=old_ids))
    new = {name: [r for r in both[name] if r["id"] not in old_ids] for name in new}
    print(f"left out {len(dropped)} paragraphs (near-duplicates of another split, or their document too short): "
          f"{sorted(dropped)}")

    for name, rs in new.items():
        append_lines([{k: r[k] for k in ORDER if k in r} | {"split": name} for r in rs], corpus / f"{name}.jsonl")
        frames, stance = profile(rs)
        print(f"{name}: +{len({r['doc_id'] for r in rs})} docs, +{len(rs)} paragraphs; "
              f"frames {({k: round(v, 2) for k, v in frames.items()})}; stance {({k: round(v, 2) for k, v in stance.items()})}")
    sizes = {name: len(existing[name]) + len(new[name]) for name in new}
    whole = sum(sizes.values())
    print("corpus now", {k: f"{v} ({v / whole:.1%})" for k, v in sizes.items()})

    append_lines([{"id": r["id"], "doc_id": r["doc_id"], "text": r["text"], "stance": r["stance"],
                  "frames": r["frames"], "annotator": "pass_a_writers"} for r in rows], agreement / "pass_a.jsonl")
    append_lines([{"id": r["id"], "doc_id": r["doc_id"], "text": r["text"], "stance": pass_b[r["id"]]["stance"],
                  "frames": pass_b[r["id"]]["frames"], "annotator": "pass_b_independent"} for r in rows],
                agreement / "pass_b.jsonl")
    append_lines(adjudication, agreement / "adjudication.jsonl")


if __name__ == "__main__":
    main()
