"""Print the datasheet's tables (label distributions per split, agreement) as Markdown.

    python seeds/tools/datasheet_tables.py > /tmp/tables.md

Every figure in seeds/README.md comes from this script, run on the committed files.
"""
from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path

from stance.codebook import Codebook
from stance.data import read_records
from stance.metrics import agreement

SEEDS = Path(__file__).resolve().parents[1]


def distribution(codebook: Codebook) -> str:
    splits = {name: read_records(SEEDS / "corpus" / f"{name}.jsonl", codebook) for name in ("train", "dev", "test")}
    lines = ["| | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]

    def row(name, fn):
        lines.append(f"| {name} | " + " | ".join(fn(rs) for rs in splits.values()) + " |")

    row("documents", lambda rs: str(len({r.doc_id for r in rs})))
    row("paragraphs", lambda rs: str(len(rs)))
    row("median words (10th-90th pct)", lambda rs: _words(rs))
    row("no frame", lambda rs: _pct(sum(1 for r in rs if not r.frames), len(rs)))
    row("hard negatives", lambda rs: str(sum(1 for r in rs if r.meta.get("hard_negative"))))
    for f in codebook.frame_ids:
        row(f"frame `{f}`", lambda rs, f=f: _pct(sum(1 for r in rs if f in r.frames), len(rs)))
    for a in codebook.actor_ids:
        row(f"`{a}` favor / against / neutral / none",
            lambda rs, a=a: " / ".join(str(Counter(r.stance[a] for r in rs)[v]) for v in ("favor", "against", "neutral", "none")))
    row("referred actors: favor / against / neutral", lambda rs: _stance_share(rs, codebook))
    voices = Counter(r.meta.get("voice") for r in splits["train"] + splits["dev"] + splits["test"])
    docs_by_voice = Counter()
    seen = set()
    for rs in splits.values():
        for r in rs:
            if r.doc_id not in seen:
                seen.add(r.doc_id)
                docs_by_voice[r.meta.get("voice")] += 1
    vt = ["| voice | documents | paragraphs |", "|---|---|---|"]
    vt += [f"| {v} | {docs_by_voice[v]} | {n} |" for v, n in sorted(voices.items(), key=lambda x: -x[1])]
    return "\n".join(lines) + "\n\n" + "\n".join(vt)


def _words(rs):
    w = sorted(len(r.text.split()) for r in rs)
    return f"{statistics.median(w):.0f} ({w[len(w) // 10]}-{w[9 * len(w) // 10]})"


def _pct(k, n):
    return f"{k} ({k / n:.0%})"


def _stance_share(rs, codebook):
    c = Counter(v for r in rs for v in r.stance.values() if v != codebook.absent_value)
    n = sum(c.values())
    return " / ".join(f"{c[v] / n:.0%}" for v in ("favor", "against", "neutral"))


def _reviewed(records, folder: Path):
    """Pass A with the reference review's changes applied."""
    changes = [json.loads(x) for x in (folder / "reference_review.jsonl").read_text().splitlines()]
    by_id = {r.id: r for r in records}
    for c in changes:
        by_id[c["id"]].stance[c["actor"]] = c["new"]
    return records


def agreement_table(codebook: Codebook) -> str:
    folder = SEEDS / "agreement"
    raw = read_records(folder / "pass_a.jsonl", codebook)
    a = _reviewed(read_records(folder / "pass_a.jsonl", codebook), folder)
    b = read_records(folder / "pass_b.jsonl", codebook)
    split_of = {}
    for name in ("train", "dev", "test"):
        for r in read_records(SEEDS / "corpus" / f"{name}.jsonl", codebook):
            split_of[r.id] = name
    before = agreement([raw, b], codebook, n_boot=1000, seed=0)
    result = agreement([a, b], codebook, n_boot=1000, seed=0)
    by_split = {}
    for name in ("train", "dev", "test"):
        ids = {i for i, s in split_of.items() if s == name}
        by_split[name] = agreement([[r for r in a if r.id in ids], [r for r in b if r.id in ids]], codebook, n_boot=0)
    adjudicated = len((folder / "adjudication.jsonl").read_text().splitlines())
    lines = [f"Paragraphs labelled by both passes: {result['n']}; fields adjudicated: {adjudicated}.", "",
             "| measure | alpha, raw pass A vs pass B [95% interval] | alpha, reviewed pass A vs pass B [95% interval] "
             "| kappa (reviewed) | alpha train | alpha dev | alpha test |", "|---|---|---|---|---|---|---|"]
    for key, fig in result["alpha"].items():
        kappa = result["kappa"]["0-1"].get(key)
        per = " | ".join(_v(by_split[s]["alpha"].get(key)) for s in ("train", "dev", "test"))
        lines.append(f"| {key} | {_ci(before['alpha'][key])} | {_ci(fig)} | {kappa:.3f} | {per} |")
    return "\n".join(lines)


def _v(fig):
    return "–" if not fig or fig.get("value") is None else f"{fig['value']:.3f}"


def _ci(fig):
    if fig.get("value") is None:
        return "–"
    return f"{fig['value']:.3f} [{fig['low']:.3f}, {fig['high']:.3f}]"


if __name__ == "__main__":
    cb = Codebook.load(SEEDS / "codebook.yaml")
    print("## Label distributions\n")
    print(distribution(cb))
    print("\n## Agreement (before adjudication)\n")
    print(agreement_table(cb))

