"""Annotation records in the codebook's JSONL format: reading, validation, splits.

Every problem is reported as ``file:line: what is wrong``; validation collects all of them
instead of stopping at the first, so a coder can fix a file in one pass.
"""
from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from .codebook import Codebook
from .errors import StanceError


class ValidationError(StanceError):
    """An annotation file with problems; ``problems`` holds every ``file:line: ...`` message."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = "\n".join(problems[:50])
        more = f"\n... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{len(problems)} problem(s) in the annotation file(s):\n{shown}{more}")


@dataclass
class Record:
    """One labelled paragraph. ``meta`` keeps every other field of the line (outlet, date...)."""

    id: str
    doc_id: str
    text: str
    stance: dict[str, str]
    frames: list[str]
    meta: dict = field(default_factory=dict)
    source: str = ""  # file:line, for messages

    def to_json(self) -> dict:
        return {"id": self.id, "doc_id": self.doc_id, "text": self.text, "stance": self.stance,
                "frames": self.frames, **self.meta}


def check_record(obj, codebook: Codebook, where: str) -> list[str]:
    """Every way ``obj`` breaks the codebook's label format, as ``where: ...`` messages."""
    if not isinstance(obj, dict):
        return [f"{where}: a line must be a JSON object, found {type(obj).__name__}"]
    problems = []
    for key in ("id", "text"):
        if key not in obj:
            problems.append(f"{where}: missing field {key!r}")
    if "id" in obj and (not isinstance(obj["id"], (str, int)) or str(obj["id"]).strip() == ""):
        problems.append(f"{where}: 'id' must be a non-empty string")
    text = obj.get("text")
    if "text" in obj and (not isinstance(text, str) or not text.strip()):
        problems.append(f"{where}: empty text")
    stance = obj.get("stance")
    if not isinstance(stance, dict):
        problems.append(f"{where}: 'stance' must be an object with one value per actor")
    else:
        for actor in stance:
            if actor not in codebook.actor_ids:
                problems.append(
                    f"{where}: unknown actor {actor!r} (codebook actors: {', '.join(codebook.actor_ids)})"
                )
        for actor in codebook.actor_ids:
            if actor not in stance or (stance[actor] is None and codebook.partial):
                if not codebook.partial:
                    problems.append(f"{where}: missing actor {actor!r} in 'stance'")
            elif stance[actor] not in codebook.value_ids:
                problems.append(
                    f"{where}: illegal stance value {stance[actor]!r} for actor {actor!r} "
                    f"(allowed: {', '.join(codebook.value_ids)})"
                )
    frames = obj.get("frames", [])
    if not isinstance(frames, list):
        problems.append(f"{where}: 'frames' must be a list")
    else:
        for f in frames:
            if f not in codebook.frame_ids:
                allowed = ", ".join(codebook.frame_ids) or "none"
                problems.append(f"{where}: unknown frame {f!r} (codebook frames: {allowed})")
        if len(set(map(str, frames))) != len(frames):
            problems.append(f"{where}: a frame is listed twice")
    return problems


def _record(obj: dict, where: str) -> Record:
    meta = {k: v for k, v in obj.items() if k not in ("id", "doc_id", "text", "stance", "frames")}
    rid = str(obj["id"])
    # an actor left out or null (allowed by a partial-annotation codebook) is simply absent here
    return Record(id=rid, doc_id=str(obj.get("doc_id") or rid), text=obj["text"],
                  stance={a: v for a, v in obj["stance"].items() if v is not None}, frames=list(obj.get("frames", [])), meta=meta,
                  source=where)


def json_lines(lines, path) -> Iterator[tuple[int, str, object, str | None]]:
    """(line number, ``file:line``, parsed value, problem) for each non-blank line; a line that
    is not JSON gives value None and a ``file:line: bad JSON`` problem."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            yield n, where, json.loads(line), None
        except json.JSONDecodeError as e:
            yield n, where, None, f"{where}: bad JSON: {e.msg} (column {e.colno})"


def validate_file(path: str | Path, codebook: Codebook) -> tuple[list[Record], list[str]]:
    """Read an annotation JSONL file; return the good records and every problem found."""
    path = Path(path)
    if not path.exists():
        return [], [f"{path}: file not found"]
    records, problems, first_line = [], [], {}
    try:
        raw = path.read_bytes()
    except OSError as e:
        return [], [f"{path}: cannot read: {e.strerror}"]
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        return [], [f"{path}:{line}: not UTF-8 text (byte {raw[e.start]:#04x})"]
    lines = content.splitlines()
    if not any(line.strip() for line in lines):
        return [], [f"{path}: the file is empty"]
    for n, where, obj, bad in json_lines(lines, path):
        if bad:
            problems.append(bad)
            continue
        found = check_record(obj, codebook, where)
        if isinstance(obj, dict) and "id" in obj:
            rid = str(obj["id"])
            if rid in first_line:
                found.append(f"{where}: duplicate id {rid!r} (first at line {first_line[rid]})")
            else:
                first_line[rid] = n
        problems.extend(found)
        if not found:
            records.append(_record(obj, where))
    return records, problems


def read_records(paths: str | Path | Iterable[str | Path], codebook: Codebook) -> list[Record]:
    """Read one or more annotation files, raising ValidationError listing every problem."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    records, problems, seen = [], [], {}
    for p in paths:
        recs, probs = validate_file(p, codebook)
        problems.extend(probs)
        for r in recs:
            if r.id in seen:
                problems.append(f"{r.source}: duplicate id {r.id!r} (first at {seen[r.id]})")
            seen[r.id] = r.source
        records.extend(recs)
    if problems:
        raise ValidationError(problems)
    return records


def write_records(records: Iterable[Record | dict], path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            obj = r.to_json() if isinstance(r, Record) else r
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")


def data_hash(records: Iterable[Record]) -> str:
    """A hash of the labelled content, for the model card: same data, same hash."""
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps([r.id, r.text, r.stance, sorted(r.frames)], sort_keys=True).encode())
    return h.hexdigest()[:16]


def split_by_document(records: list[Record], fractions=(0.7, 0.15, 0.15), seed: int = 0
                      ) -> tuple[list[Record], ...]:
    """Split records into groups of whole documents (paragraphs of one article stay together)."""
    docs = defaultdict(list)
    for r in records:
        docs[r.doc_id].append(r)
    ids = sorted(docs)
    random.Random(seed).shuffle(ids)
    total = len(records)
    bounds, acc = [], 0.0
    for frac in fractions[:-1]:
        acc += frac
        bounds.append(acc * total)
    parts: list[list[Record]] = [[] for _ in fractions]
    count, part = 0, 0
    for d in ids:
        while part < len(bounds) and count >= bounds[part]:
            part += 1
        parts[part].extend(docs[d])
        count += len(docs[d])
    return tuple(parts)


def to_hf_dataset(records: list[Record], codebook: Codebook):
    """A ``datasets.Dataset`` with one column per actor's stance and one 0/1 column per frame."""
    from datasets import Dataset

    rows = {"id": [], "doc_id": [], "text": []}
    for a in codebook.actor_ids:
        rows[f"stance_{a}"] = []
    for f in codebook.frame_ids:
        rows[f"frame_{f}"] = []
    for r in records:
        rows["id"].append(r.id)
        rows["doc_id"].append(r.doc_id)
        rows["text"].append(r.text)
        for a in codebook.actor_ids:
            rows[f"stance_{a}"].append(r.stance.get(a))  # None: not annotated
        for f in codebook.frame_ids:
            rows[f"frame_{f}"].append(int(f in r.frames))
    return Dataset.from_dict(rows)
