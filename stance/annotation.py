"""The annotation loop: import annotation-tool exports, write tasks for the tools, agreement.

Every imported record is in the codebook's label format (``stance.data``) plus ``annotator``
and ``source`` (where it came from)::

    {"id": "doc7-p3", "doc_id": "doc7", "text": "...", "stance": {...every actor...},
     "frames": [...], "annotator": "alice@example.org",
     "source": {"tool": "labelstudio", "file": "export.json", "task": 12, "annotation": 40}}

Conventions per tool (``stance tasks --to TOOL`` writes exactly what ``stance import --from
TOOL`` reads back, so a batch makes the round trip with identical labels):

Label Studio (JSON export: a list of tasks)
    The task's ``data`` holds ``text``, ``id`` (the paragraph id; the task id is used when it
    is missing), ``doc_id`` and any other carried fields. Each entry of ``annotations``
    (``completions`` in very old exports) is one annotator's pass over the task; those with
    ``was_cancelled`` (skipped tasks) are dropped and counted, tasks without annotations are
    counted as unannotated. A ``choices`` result whose ``from_name`` is an actor id or
    ``stance_<actor>`` holds that actor's stance (exactly one choice, a codebook value id,
    matched case-insensitively); ``from_name`` ``frames`` holds the frames present (an
    annotation with no ``frames`` result has no frames). ``textarea`` results are kept as
    ``notes``; other result types are ignored. The annotator is ``completed_by`` (the e-mail of
    an expanded user object, else ``created_username`` without its trailing id, else the user
    id). ``source`` holds the task and annotation ids. The labelling configuration that
    ``stance tasks`` writes (``labelstudio_config``) has one single-choice question
    ``stance_<actor>`` per actor, one multi-choice question ``frames`` and a ``notes`` box,
    with the codebook's definitions as hints; predictions carry a ``score`` per result and per
    task (``1 - uncertainty``, see ``stance.suggest``).

Prodigy (JSONL from ``prodigy db-out``; the ``choice`` interface)
    One task per paragraph with top-level ``id``, ``doc_id``, ``text``, ``options`` (one option
    per actor and value, id ``"<actor>:<value>"``, and one per frame, id ``"frame:<id>"``) and
    ``config: {"choice_style": "multiple"}``; ``accept`` lists the selected option ids (in a
    task, the model's predictions, which Prodigy pre-selects). An annotated record has
    ``answer``: ``accept`` records are imported, ``reject`` and ``ignore`` answers are dropped
    and counted. The annotator is ``_annotator_id``, else ``_session_id``. Carried fields and
    the model's scores travel in ``meta``.

doccano (JSONL export of a text classification project)
    ``text`` and ``label``, a list of label strings in the same ``"<actor>:<value>"`` /
    ``"frame:<id>"`` convention; a record with an empty ``label`` list was not annotated and
    is counted, not imported. doccano's own integer ``id`` is not the paragraph id, so tasks
    carry it as ``paragraph_id`` (with ``doc_id`` and carried fields as metadata). The
    annotator is an ``annotator`` or ``user`` field, else ``--annotator``, else the file name
    (doccano writes one file per user, named after the user). ``stance tasks`` also writes
    ``OUT.labels.json``, the label set to import into the doccano project.

CSV (one row per annotated paragraph)
    Columns ``id`` and ``text``, optional ``doc_id`` and ``annotator``, one column per actor
    (``<actor>`` or ``stance_<actor>``, holding a value id) and one 0/1 column per frame
    (``frame_<id>`` or ``<id>``; also true/false, yes/no, x, and an empty cell for 0). Other
    columns are carried into the record, except the model's score columns (``p_...``).

Problems are never silently dropped: labels not in the codebook, unknown ``from_name``s or
choices, missing actors (unless ``missing_as_absent``, which fills the codebook's absent value),
bad JSON and the same paragraph annotated twice by one annotator are collected as
``file:line: ...`` (Label Studio: ``file: task N, annotation M by X: ...``) messages and raised
together as ``ImportProblems`` (exit code 1).
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .codebook import Codebook
from .data import ValidationError, json_lines
from .errors import StanceError

IMPORT_FORMATS = ("labelstudio", "prodigy", "doccano", "csv")
TASK_FORMATS = ("labelstudio", "prodigy", "doccano")
TEXT_NAME = "text"  # the Label Studio object tag and data key
FRAMES_NAME = "frames"  # the Label Studio frames question
NOTES_NAME = "notes"  # the Label Studio notes box
FRAME_PREFIX = "frame"  # option / label ids "frame:<id>" for Prodigy and doccano

# keys of a prediction row that are labels or scores, not data to carry into a task
_LABEL_KEYS = {"stance", "frames", "stance_scores", "frame_scores", "confidence", "uncertainty_detail"}
_BASE_KEYS = {"id", "doc_id", "text"}
# record keys an import sets itself; a carried field of the same name is not copied
_RESERVED = _BASE_KEYS | {"stance", "frames", "annotator", "source", "notes"}
# fields tasks carry for the annotator's information only; an import does not keep them
_TASK_ONLY = {"uncertainty", "picked_for", "model", "score", "confidence", "stance_scores", "frame_scores"}
_MODEL_COLUMNS = re.compile(r"^(p_.+|windows|english|stance_scores|frame_scores|confidence)$")


class ImportProblems(ValidationError):
    """Annotation exports with problems; ``problems`` holds every ``file:line: ...`` message."""

    exit_code = 1


def dumps(obj) -> str:
    """One JSON line; the line separators ``str.splitlines`` would break a line at are escaped."""
    line = json.dumps(obj, ensure_ascii=False, default=str)
    return line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").replace("\x85", "\\u0085")


def write_jsonl(rows, path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(dumps(r) + "\n")


# -- labels as option strings -------------------------------------------------------------------
def stance_option(actor: str, value: str) -> str:
    return f"{actor}:{value}"


def frame_option(frame: str) -> str:
    return f"{FRAME_PREFIX}:{frame}"


def options(codebook: Codebook) -> list[str]:
    """Every option id of the Prodigy / doccano convention, in codebook order."""
    out = [stance_option(a, v) for a in codebook.actor_ids for v in codebook.value_ids]
    return out + [frame_option(f) for f in codebook.frame_ids]


def labels_of(stance: dict, frames: list, codebook: Codebook) -> list[str]:
    """A record's labels as option ids (every actor that has a value, then the frames)."""
    out = [stance_option(a, stance[a]) for a in codebook.actor_ids if a in stance]
    return out + [frame_option(f) for f in codebook.frame_ids if f in frames]


class _Lookup:
    """Case-insensitive matching of actor, value and frame ids against the codebook."""

    def __init__(self, codebook: Codebook):
        self.cb = codebook
        self.actors = {a.lower(): a for a in codebook.actor_ids}
        self.values = {v.lower(): v for v in codebook.value_ids}
        self.frames = {f.lower(): f for f in codebook.frame_ids}

    @staticmethod
    def _key(x) -> str:
        return str(x).strip().lower()

    def actor(self, x):
        return self.actors.get(self._key(x))

    def value(self, x):
        return self.values.get(self._key(x))

    def frame(self, x):
        return self.frames.get(self._key(x))

    def from_name(self, name):
        """An actor id, ``FRAMES_NAME``, or None for a Label Studio ``from_name``."""
        key = self._key(name)
        if key in (FRAMES_NAME, FRAME_PREFIX):
            return FRAMES_NAME
        if key in self.actors:
            return self.actors[key]
        if key.startswith("stance_") and key[len("stance_"):] in self.actors:
            return self.actors[key[len("stance_"):]]
        return None

    def list(self, what: str) -> str:
        ids = {"actors": self.cb.actor_ids, "values": self.cb.value_ids, "frames": self.cb.frame_ids}[what]
        return ", ".join(ids) or "none"


# -- import -------------------------------------------------------------------------------------
@dataclass
class ImportResult:
    """Imported records (each with ``annotator``) and counts of what was dropped and why."""

    tool: str
    records: list[dict]
    counts: Counter = field(default_factory=Counter)

    def annotators(self) -> Counter:
        return Counter(r["annotator"] for r in self.records)

    def by_annotator(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for r in self.records:
            out.setdefault(r["annotator"], []).append(r)
        return out

    def summary(self) -> str:
        per = ", ".join(f"{a}: {n}" for a, n in sorted(self.annotators().items()))
        parts = [f"imported {len(self.records)} annotation(s) from {self.tool}"
                 + (f" by {len(self.annotators())} annotator(s) ({per})" if self.records else "")]
        names = {"rejected": "rejected answer(s) dropped", "ignored": "ignored answer(s) dropped",
                 "cancelled": "cancelled (skipped) annotation(s) dropped",
                 "unannotated": "unannotated task(s) skipped", "filled": "missing actor(s) filled as absent"}
        parts += [f"{self.counts[k]} {text}" for k, text in names.items() if self.counts.get(k)]
        return "; ".join(parts)


class _Importer:
    def __init__(self, codebook: Codebook, tool: str, missing_as_absent: bool, annotator: str | None):
        if tool not in IMPORT_FORMATS:
            raise StanceError(f"unknown format {tool!r}; choose one of {', '.join(IMPORT_FORMATS)}")
        if missing_as_absent and codebook.absent_value is None:
            raise StanceError(f"--missing-as-absent needs a codebook with an absent value; "
                              f"{codebook.name!r} has none")
        self.cb = codebook
        self.look = _Lookup(codebook)
        self.tool = tool
        self.missing_as_absent = missing_as_absent
        self.annotator = annotator
        self.problems: list[str] = []
        self.records: list[dict] = []
        self.counts: Counter = Counter()
        self.first: dict[tuple[str, str], str] = {}

    def problem(self, message: str) -> None:
        self.problems.append(message)

    # -- reading ---------------------------------------------------------------------------
    def text_of(self, path: Path) -> str | None:
        if not path.exists():
            raise StanceError(f"{path}: file not found")
        if path.is_dir():
            raise StanceError(f"{path}: is a folder; pass the export file(s)")
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            self.problem(f"{path}:{line}: not UTF-8 text (byte {raw[e.start]:#04x})")
            return None
        if not text.strip():
            self.problem(f"{path}: the file is empty")
            return None
        return text

    def jsonl(self, path: Path) -> Iterator[tuple[str, dict]]:
        text = self.text_of(path)
        if text is None:
            return
        for _, where, obj, bad in json_lines(text.split("\n"), path):
            if bad:
                self.problem(bad)
                continue
            if not isinstance(obj, dict):
                self.problem(f"{where}: a line must be a JSON object, found {type(obj).__name__}")
                continue
            yield where, obj

    def default_annotator(self, path: Path) -> str:
        return self.annotator or path.stem

    # -- labels ----------------------------------------------------------------------------
    def set_stance(self, stance: dict, actor: str, raw, where: str) -> bool:
        value = self.look.value(raw)
        if value is None:
            self.problem(f"{where}: unknown choice {raw!r} for actor {actor!r} "
                         f"(codebook values: {self.look.list('values')})")
            return False
        if actor in stance and stance[actor] != value:
            self.problem(f"{where}: two stance values for actor {actor!r}: {stance[actor]!r} and {value!r}")
            return False
        stance[actor] = value
        return True

    def add_frame(self, frames: list, raw, where: str, what: str = "frame", context: str = "") -> bool:
        frame = self.look.frame(raw)
        if frame is None:
            self.problem(f"{where}: unknown {what} {raw!r}{context} (codebook frames: {self.look.list('frames')})")
            return False
        if frame not in frames:
            frames.append(frame)
        return True

    def option_labels(self, labels, where: str) -> tuple[dict, list, bool]:
        """``"<actor>:<value>"`` and ``"frame:<id>"`` strings -> (stance, frames, all good)."""
        stance, frames, ok = {}, [], True
        for label in labels:
            if not isinstance(label, str) or ":" not in label:
                self.problem(f"{where}: label {label!r} is not '<actor>:<value>' or 'frame:<id>'")
                ok = False
                continue
            head, _, tail = label.partition(":")
            actor = self.look.actor(head)
            if head.strip().lower() == FRAME_PREFIX and actor is None:
                ok &= self.add_frame(frames, tail, where, context=f" in label {label!r}")
            elif actor is None:
                self.problem(f"{where}: unknown actor {head!r} in label {label!r} "
                             f"(codebook actors: {self.look.list('actors')})")
                ok = False
            else:
                ok &= self.set_stance(stance, actor, tail, where)
        return stance, frames, ok

    # -- one record ------------------------------------------------------------------------
    def finish(self, where: str, rid, doc_id, text, stance: dict, frames: list, annotator, source: dict,
               meta: dict, ok: bool = True, notes: str | None = None) -> None:
        if rid is None or str(rid).strip() == "":
            self.problem(f"{where}: no paragraph id")
            ok = False
        if not isinstance(text, str) or not text.strip():
            self.problem(f"{where}: empty or missing text")
            ok = False
        missing = [a for a in self.cb.actor_ids if a not in stance]
        if missing and not self.missing_as_absent:
            hint = (f"; use --missing-as-absent to record them as {self.cb.absent_value!r}"
                    if self.cb.absent_value is not None else "")
            self.problem(f"{where}: missing stance for actor(s) {', '.join(missing)}{hint}")
            ok = False
        if not ok:
            return
        if missing:
            self.counts["filled"] += len(missing)
        rid, annotator = str(rid), str(annotator)
        key = (rid, annotator)
        if key in self.first:
            self.problem(f"{where}: paragraph {rid!r} annotated twice by {annotator!r} "
                         f"(first at {self.first[key]})")
            return
        self.first[key] = where
        record = {"id": rid, "doc_id": str(doc_id) if doc_id not in (None, "") else rid, "text": text,
                  "stance": {a: stance.get(a, self.cb.absent_value) for a in self.cb.actor_ids},
                  "frames": [f for f in self.cb.frame_ids if f in frames],
                  "annotator": annotator, "source": source}
        if notes:
            record["notes"] = notes
        record.update({k: v for k, v in meta.items() if k not in _RESERVED})
        self.records.append(record)

    # -- Label Studio ----------------------------------------------------------------------
    def labelstudio(self, path: Path) -> None:
        text = self.text_of(path)
        if text is None:
            return
        try:
            tasks = json.loads(text)
        except json.JSONDecodeError as e:
            self.problem(f"{path}:{e.lineno}: bad JSON: {e.msg} (column {e.colno})")
            return
        if isinstance(tasks, dict) and "data" in tasks:
            tasks = [tasks]
        if not isinstance(tasks, list):
            self.problem(f"{path}: a Label Studio JSON export is a list of tasks, found "
                         f"{type(tasks).__name__}")
            return
        for k, task in enumerate(tasks, 1):
            if not isinstance(task, dict):
                self.problem(f"{path}: task #{k}: a task must be a JSON object")
                continue
            tid = task.get("id", f"#{k}")
            twhere = f"{path}: task {tid}"
            data = task.get("data")
            if not isinstance(data, dict):
                extra = (" (this looks like a JSON-MIN or CSV export; export as JSON)"
                         if TEXT_NAME in task else "")
                self.problem(f"{twhere}: no 'data' object{extra}")
                continue
            if TEXT_NAME not in data:
                self.problem(f"{twhere}: no 'data.{TEXT_NAME}' (data keys: {', '.join(map(str, data)) or 'none'})")
                continue
            annotations = task.get("annotations", task.get("completions")) or []
            if not isinstance(annotations, list):
                self.problem(f"{twhere}: 'annotations' must be a list")
                continue
            if not annotations:
                self.counts["unannotated"] += 1
                continue
            for ann in annotations:
                self.labelstudio_annotation(path, twhere, tid, data, ann)

    @staticmethod
    def labelstudio_user(ann: dict):
        user = ann.get("completed_by")
        if isinstance(user, dict):
            return user.get("email") or user.get("username") or user.get("id")
        name = ann.get("created_username")
        if isinstance(name, str) and name.strip():
            return re.sub(r",\s*\d+\s*$", "", name).strip()
        return user

    def labelstudio_annotation(self, path: Path, twhere: str, tid, data: dict, ann) -> None:
        if not isinstance(ann, dict):
            self.problem(f"{twhere}: an annotation must be a JSON object")
            return
        if ann.get("was_cancelled"):
            self.counts["cancelled"] += 1
            return
        annotator = self.labelstudio_user(ann)
        if annotator in (None, ""):
            annotator = self.default_annotator(path)
        where = f"{twhere}, annotation {ann.get('id', '?')} by {annotator}"
        results = ann.get("result")
        if not isinstance(results, list):
            self.problem(f"{where}: 'result' must be a list")
            return
        stance, frames, notes, ok = {}, [], [], True
        for res in results:
            if not isinstance(res, dict):
                self.problem(f"{where}: a result must be a JSON object")
                ok = False
                continue
            value = res.get("value") if isinstance(res.get("value"), dict) else {}
            kind = res.get("type")
            if kind == "textarea":
                notes += [str(t) for t in value.get("text") or []]
                continue
            if kind != "choices" and "choices" not in value:
                continue  # other controls (ratings, spans...) are not part of the codebook
            name = res.get("from_name")
            choices = value.get("choices")
            if not isinstance(choices, list):
                self.problem(f"{where}: result {name!r} has no list of choices")
                ok = False
                continue
            target = self.look.from_name(name)
            if target is None:
                self.problem(f"{where}: unknown from_name {name!r}: not an actor of the codebook "
                             f"({self.look.list('actors')}), 'stance_<actor>' or '{FRAMES_NAME}'")
                ok = False
            elif target == FRAMES_NAME:
                for c in choices:
                    ok &= self.add_frame(frames, c, where, what="frame choice")
            elif len(choices) != 1:
                self.problem(f"{where}: {len(choices)} choices for actor {target!r}, expected exactly one")
                ok = False
            else:
                ok &= self.set_stance(stance, target, choices[0], where)
        rid = data.get("id")
        rid = tid if rid in (None, "") else rid
        meta = {k: v for k, v in data.items() if k not in ("id", "doc_id", TEXT_NAME) and k not in _TASK_ONLY}
        source = {"tool": "labelstudio", "file": str(path), "task": tid, "annotation": ann.get("id")}
        self.finish(where, rid, data.get("doc_id"), data.get(TEXT_NAME), stance, frames, annotator, source,
                    meta, ok, notes="\n".join(notes) if notes else None)

    # -- Prodigy ---------------------------------------------------------------------------
    def prodigy(self, path: Path) -> None:
        for where, obj in self.jsonl(path):
            answer = obj.get("answer")
            if answer is None:
                self.problem(f"{where}: no 'answer': not an annotated Prodigy record "
                             f"(export the dataset with prodigy db-out)")
                continue
            if answer in ("reject", "ignore"):
                self.counts["rejected" if answer == "reject" else "ignored"] += 1
                continue
            if answer != "accept":
                self.problem(f"{where}: unknown answer {answer!r} (expected accept, reject or ignore)")
                continue
            accept = obj.get("accept")
            if not isinstance(accept, list):
                self.problem(f"{where}: no 'accept' list of selected options (the choice interface, "
                             f"as written by stance tasks --to prodigy)")
                continue
            stance, frames, ok = self.option_labels(accept, where)
            meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
            rid = obj.get("id", meta.get("id"))
            if rid in (None, ""):
                rid = obj.get("_input_hash")
            annotator = obj.get("_annotator_id") or obj.get("_session_id") or self.default_annotator(path)
            carried = {k: v for k, v in meta.items() if k not in ("id", "doc_id") and k not in _TASK_ONLY}
            source = {"tool": "prodigy", "file": str(path), "line": int(where.rsplit(":", 1)[1])}
            if obj.get("_session_id"):
                source["session"] = obj["_session_id"]
            self.finish(where, rid, obj.get("doc_id", meta.get("doc_id")), obj.get("text"), stance, frames,
                        annotator, source, carried, ok)

    # -- doccano ---------------------------------------------------------------------------
    def doccano(self, path: Path) -> None:
        skip = {"id", "paragraph_id", "doc_id", "text", "label", "labels", "Comments", "comments",
                "annotator", "user"} | _TASK_ONLY
        for where, obj in self.jsonl(path):
            labels = obj.get("label", obj.get("labels"))
            if not isinstance(labels, list):
                self.problem(f"{where}: no 'label' list (expected a doccano text classification export)")
                continue
            if not labels:
                self.counts["unannotated"] += 1
                continue
            if any(isinstance(x, list) for x in labels):
                self.problem(f"{where}: 'label' holds spans; expected a text classification export")
                continue
            stance, frames, ok = self.option_labels(labels, where)
            rid = obj.get("paragraph_id")
            if rid in (None, ""):
                rid = obj.get("id")
            user = obj.get("annotator", obj.get("user"))
            annotator = user if isinstance(user, (str, int)) and str(user) else self.default_annotator(path)
            source = {"tool": "doccano", "file": str(path), "line": int(where.rsplit(":", 1)[1])}
            if obj.get("paragraph_id") not in (None, "") and obj.get("id") is not None:
                source["example"] = obj["id"]
            self.finish(where, rid, obj.get("doc_id"), obj.get("text"), stance, frames, annotator, source,
                        {k: v for k, v in obj.items() if k not in skip}, ok)

    # -- CSV -------------------------------------------------------------------------------
    def csv(self, path: Path) -> None:
        text = self.text_of(path)
        if text is None:
            return
        csv.field_size_limit(sys.maxsize)
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = reader.fieldnames or []
        hwhere = f"{path}:1"
        actor_col, frame_col, other, ok = {}, {}, [], True
        for col in header:
            name = (col or "").strip()
            key = name.lower()
            if key in ("id", "text", "doc_id", "annotator"):
                continue
            if key.startswith("stance_") or self.look.actor(key):
                actor = self.look.actor(key[len("stance_"):] if key.startswith("stance_") else key)
                if actor is None:
                    self.problem(f"{hwhere}: column {name!r} is not an actor of the codebook "
                                 f"({self.look.list('actors')})")
                    ok = False
                elif actor in actor_col:
                    self.problem(f"{hwhere}: two columns for actor {actor!r}: {actor_col[actor]!r} and {name!r}")
                    ok = False
                else:
                    actor_col[actor] = col
            elif key.startswith("frame_") or self.look.frame(key):
                frame = self.look.frame(key[len("frame_"):] if key.startswith("frame_") else key)
                if frame is None:
                    self.problem(f"{hwhere}: column {name!r} is not a frame of the codebook "
                                 f"({self.look.list('frames')})")
                    ok = False
                elif frame in frame_col:
                    self.problem(f"{hwhere}: two columns for frame {frame!r}: {frame_col[frame]!r} and {name!r}")
                    ok = False
                else:
                    frame_col[frame] = col
            elif not _MODEL_COLUMNS.match(key):
                other.append(col)
        lower = {(c or "").strip().lower(): c for c in header}
        for need in ("id", "text"):
            if need not in lower:
                self.problem(f"{hwhere}: no {need!r} column (columns: {', '.join(header) or 'none'})")
                ok = False
        if not self.missing_as_absent:
            for a in self.cb.actor_ids:
                if a not in actor_col:
                    self.problem(f"{hwhere}: no column for actor {a!r} (name it {a!r} or 'stance_{a}')")
                    ok = False
            for f in self.cb.frame_ids:
                if f not in frame_col:
                    self.problem(f"{hwhere}: no 0/1 column for frame {f!r} (name it 'frame_{f}' or {f!r})")
                    ok = False
        if not ok:
            return
        truthy, falsy = {"1", "true", "yes", "y", "x"}, {"0", "false", "no", "n", ""}
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                self.problem(f"{path}:{reader.line_num}: malformed CSV: {e}")
                return
            where = f"{path}:{reader.line_num}"
            if None in row:
                self.problem(f"{where}: more fields than the header")
                continue
            stance, frames, good = {}, [], True
            for a, col in actor_col.items():
                cell = (row.get(col) or "").strip()
                if cell:
                    good &= self.set_stance(stance, a, cell, where)
            for f, col in frame_col.items():
                cell = (row.get(col) or "").strip().lower()
                if cell in truthy:
                    frames.append(f)
                elif cell not in falsy:
                    self.problem(f"{where}: frame column {col!r} holds {row.get(col)!r}; use 1 or 0")
                    good = False
            annotator = (row.get(lower["annotator"]) or "").strip() if "annotator" in lower else ""
            doc_id = (row.get(lower["doc_id"]) or "").strip() if "doc_id" in lower else ""
            source = {"tool": "csv", "file": str(path), "line": reader.line_num}
            self.finish(where, (row.get(lower["id"]) or "").strip(), doc_id, row.get(lower["text"]), stance,
                        frames, annotator or self.default_annotator(path), source,
                        {c: row[c] for c in other if row.get(c) not in (None, "")}, good)


def import_annotations(paths, tool: str, codebook: Codebook, *, missing_as_absent: bool = False,
                       annotator: str | None = None) -> ImportResult:
    """Read annotation-tool export files into codebook records; see the module docstring.

    Raises ``ImportProblems`` listing every problem in every file (nothing is imported then).
    ``annotator`` names the coder where an export does not (else the file name is used).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    imp = _Importer(codebook, tool, missing_as_absent, annotator)
    for p in paths:
        getattr(imp, tool)(Path(p))
    if imp.problems:
        raise ImportProblems(imp.problems)
    return ImportResult(tool, imp.records, imp.counts)


def annotator_filename(name: str, taken: set) -> str:
    """A safe, unique file name (without suffix) for an annotator."""
    base = re.sub(r"[^A-Za-z0-9._@+-]+", "_", str(name)).strip("._") or "annotator"
    out, k = base, 2
    while out.lower() in taken:
        out, k = f"{base}_{k}", k + 1
    taken.add(out.lower())
    return out


def write_import(result: ImportResult, output: str | Path | None = None,
                 split_dir: str | Path | None = None) -> list[Path]:
    """Write an import as one JSONL file, or one file per annotator in ``split_dir``.

    One file can hold each paragraph only once, so a single output with a paragraph annotated
    by several annotators is an error that asks for ``split_dir``.
    """
    if (output is None) == (split_dir is None):
        raise StanceError("give either -o OUT.jsonl or --split-by-annotator DIR")
    if output is not None:
        seen: dict[str, str] = {}
        shared = {}
        for r in result.records:
            if r["id"] in seen and seen[r["id"]] != r["annotator"]:
                shared.setdefault(r["id"], {seen[r["id"]]}).add(r["annotator"])
            seen.setdefault(r["id"], r["annotator"])
        if shared:
            names = sorted({a for s in shared.values() for a in s})
            raise StanceError(f"{len(shared)} paragraph(s) were annotated by several annotators "
                              f"({', '.join(names)}), e.g. {next(iter(shared))!r}; one file holds one "
                              f"pass: write one pass per annotator with --split-by-annotator DIR")
        output = Path(output)
        write_jsonl(result.records, output)
        return [output]
    folder = Path(split_dir)
    folder.mkdir(parents=True, exist_ok=True)
    taken: set = set()
    written = []
    for annotator, records in sorted(result.by_annotator().items()):
        path = folder / f"{annotator_filename(annotator, taken)}.jsonl"
        write_jsonl(records, path)
        written.append(path)
    return written


# -- tasks --------------------------------------------------------------------------------------
def _scalar(v) -> bool:
    if isinstance(v, float) and not math.isfinite(v):
        return False
    return isinstance(v, (str, int, float, bool)) or v is None


def carried_data(row: dict) -> dict:
    """The fields of a prediction row to carry into a task, besides id, doc_id and text."""
    out = {}
    for k, v in row.items():
        if k in _BASE_KEYS or k in _LABEL_KEYS or k in ("annotator", "source", "notes"):
            continue
        if re.match(r"^(stance_|frame_|p_)", k) or k in ("windows", "english"):
            continue
        if hasattr(v, "item") and not isinstance(v, (list, dict, str)):
            try:  # numpy scalars from Parquet inputs
                v = v.item()
            except (TypeError, ValueError):
                pass
        if isinstance(v, float) and not math.isfinite(v):
            v = None  # a missing cell of a table
        if _scalar(v) or isinstance(v, (list, dict)):
            out[k] = v if _scalar(v) else json.loads(dumps(v))
        else:
            out[k] = str(v)
    return out


def _hint(text: str) -> str:
    return " ".join(str(text).split())


def labelstudio_config(codebook: Codebook) -> str:
    """The Label Studio labelling configuration (XML) for a codebook.

    One single-choice question ``stance_<actor>`` per actor (required, the stance values as
    choices with their definitions as hints, the actor's description as the heading), one
    multi-choice question ``frames`` (definitions and signals as hints) and a ``notes`` box.
    """
    view = ET.Element("View")
    ET.SubElement(view, "Header", value=f"Codebook {codebook.name} {codebook.version}".strip()
                  + ": one stance per actor, any number of frames")
    ET.SubElement(view, "Text", name=TEXT_NAME, value=f"${TEXT_NAME}")
    for actor in codebook.actors:
        box = ET.SubElement(view, "View", style="margin-top: 0.6em")
        title = actor.name if actor.name == actor.id else f"{actor.name} ({actor.id})"
        if actor.description:
            title += f": {_hint(actor.description)}"
        ET.SubElement(box, "Header", value=title, size="5")
        choices = ET.SubElement(box, "Choices", name=f"stance_{actor.id}", toName=TEXT_NAME,
                                choice="single-radio", showInline="true", required="true",
                                requiredMessage=f"Choose a stance toward {actor.name}")
        for v in codebook.stance_values:
            ET.SubElement(choices, "Choice", value=v.id, hint=_hint(v.definition or v.id))
    if codebook.frames:
        box = ET.SubElement(view, "View", style="margin-top: 0.6em")
        ET.SubElement(box, "Header", value="Frames: any number, or none", size="5")
        choices = ET.SubElement(box, "Choices", name=FRAMES_NAME, toName=TEXT_NAME, choice="multiple",
                                showInline="true")
        for f in codebook.frames:
            hint = _hint(f.definition or f.name)
            if f.signals:
                hint += " Signals: " + "; ".join(f.signals) + "."
            if f.not_:
                hint += " Not: " + "; ".join(f.not_) + "."
            ET.SubElement(choices, "Choice", value=f.id, hint=hint)
    ET.SubElement(view, "TextArea", name=NOTES_NAME, toName=TEXT_NAME, rows="2", maxSubmissions="1",
                  placeholder="notes for adjudication (optional)")
    ET.indent(view, space="  ")
    return ET.tostring(view, encoding="unicode") + "\n"


def _frame_confidence(row: dict, codebook: Codebook) -> float | None:
    scores = row.get("frame_scores") or {}
    if not scores:
        return None
    conf = [scores[f] if f in row.get("frames", []) else 1.0 - scores[f] for f in codebook.frame_ids
            if f in scores]
    return round(sum(conf) / len(conf), 4) if conf else None


def labelstudio_task(row: dict, codebook: Codebook, model_version: str | None = None) -> dict:
    """A Label Studio task: ``data`` (text, id, doc_id, carried fields) and the model's prediction."""
    data = {TEXT_NAME: row["text"], "id": row["id"], "doc_id": row.get("doc_id", row["id"])}
    data.update({k: v for k, v in carried_data(row).items() if k not in data})
    task = {"data": data}
    if "stance" in row:
        results = []
        for a in codebook.actor_ids:
            value = row["stance"][a]
            res = {"id": f"stance_{a}", "from_name": f"stance_{a}", "to_name": TEXT_NAME, "type": "choices",
                   "value": {"choices": [value]}}
            score = (row.get("stance_scores") or {}).get(a, {}).get(value)
            if score is not None:
                res["score"] = score
            results.append(res)
        if row.get("frames"):
            res = {"id": FRAMES_NAME, "from_name": FRAMES_NAME, "to_name": TEXT_NAME, "type": "choices",
                   "value": {"choices": list(row["frames"])}}
            conf = _frame_confidence(row, codebook)
            if conf is not None:
                res["score"] = conf
            results.append(res)
        pred = {"model_version": model_version or "stance", "result": results}
        if row.get("confidence") is not None:
            pred["score"] = row["confidence"]
        task["predictions"] = [pred]
    return task


def _option_texts(codebook: Codebook) -> list[dict]:
    out = [{"id": stance_option(a.id, v), "text": f"{a.name}: {v}"} for a in codebook.actors
           for v in codebook.value_ids]
    return out + [{"id": frame_option(f.id), "text": f"Frame: {f.name}"} for f in codebook.frames]


def prodigy_task(row: dict, codebook: Codebook, model_version: str | None = None) -> dict:
    """A Prodigy ``choice`` task; ``accept`` pre-selects the model's labels."""
    meta = {"id": row["id"], "doc_id": row.get("doc_id", row["id"])}
    meta.update({k: v for k, v in carried_data(row).items() if k not in meta})
    task = {"id": row["id"], "doc_id": row.get("doc_id", row["id"]), "text": row["text"],
            "options": _option_texts(codebook), "config": {"choice_style": "multiple"}}
    if "stance" in row:
        task["accept"] = labels_of(row["stance"], row.get("frames", []), codebook)
        if model_version:
            meta["model"] = model_version
        if row.get("confidence") is not None:
            meta["score"] = row["confidence"]
        for k in ("stance_scores", "frame_scores"):
            if k in row:
                task[k] = row[k]
    task["meta"] = meta
    return task


def doccano_task(row: dict, codebook: Codebook, model_version: str | None = None) -> dict:
    """A doccano text classification example; ``label`` pre-fills the model's labels."""
    task = {"text": row["text"], "paragraph_id": row["id"], "doc_id": row.get("doc_id", row["id"])}
    task.update({k: v for k, v in carried_data(row).items() if k not in task and k not in ("id", "label")})
    if "stance" in row:
        task["label"] = labels_of(row["stance"], row.get("frames", []), codebook)
        for k in ("confidence", "stance_scores", "frame_scores"):
            if row.get(k) is not None:
                task[k] = row[k]
    return task


_COLOURS = ["#209cee", "#ff3860", "#23d160", "#ffdd57", "#b86bff", "#ff8c42", "#00d1b2", "#7a7a7a"]


def doccano_labels(codebook: Codebook) -> list[dict]:
    """The label set to import into a doccano project, one label per option id."""
    out = []
    for k, a in enumerate(codebook.actor_ids):
        for v in codebook.value_ids:
            out.append({"text": stance_option(a, v), "prefix_key": None, "suffix_key": None,
                        "background_color": _COLOURS[k % len(_COLOURS)], "text_color": "#ffffff"})
    for f in codebook.frame_ids:
        out.append({"text": frame_option(f), "prefix_key": None, "suffix_key": None,
                    "background_color": "#363636", "text_color": "#ffffff"})
    return out


def labelstudio_config_path(output: Path) -> Path:
    return output.with_suffix(".config.xml")


def write_tasks(rows: list[dict], codebook: Codebook, tool: str, output: str | Path,
                config: str | Path | None = None, model_version: str | None = None) -> list[Path]:
    """Write annotation tasks for ``tool``; returns the files written.

    ``rows`` are prediction rows (``predict_items``) or plain ``{"id", "doc_id", "text"}`` rows
    for tasks without predictions. Label Studio gets a JSON list of tasks plus the labelling
    configuration (``config``, default ``OUTPUT`` with suffix ``.config.xml``); Prodigy a JSONL
    file; doccano a JSONL file plus its label set (``OUTPUT`` with suffix ``.labels.json``).
    """
    if tool not in TASK_FORMATS:
        raise StanceError(f"unknown task format {tool!r}; choose one of {', '.join(TASK_FORMATS)}")
    output = Path(output)
    if tool == "labelstudio":
        tasks = [labelstudio_task(r, codebook, model_version) for r in rows]
        output.write_text(json.dumps(tasks, ensure_ascii=False, indent=1, default=str) + "\n", encoding="utf-8")
        xml = Path(config) if config else labelstudio_config_path(output)
        xml.write_text(labelstudio_config(codebook), encoding="utf-8")
        return [output, xml]
    if tool == "prodigy":
        write_jsonl((prodigy_task(r, codebook, model_version) for r in rows), output)
        return [output]
    write_jsonl((doccano_task(r, codebook, model_version) for r in rows), output)
    labels = output.with_suffix(".labels.json")
    labels.write_text(json.dumps(doccano_labels(codebook), indent=1) + "\n", encoding="utf-8")
    return [output, labels]


# -- paragraphs and predictions -----------------------------------------------------------------
def read_paragraphs(inputs, opts=None, log=None) -> list:
    """Every good paragraph of the inputs (``stance.inputs``); bad items are logged and skipped."""
    from .inputs import ReadOptions, Stats, expand_inputs, read_items

    log = log or (lambda m: print(m, file=sys.stderr))
    opts = opts or ReadOptions()
    items, skipped = [], 0
    for item in read_items(expand_inputs(list(inputs)), opts, Stats()):
        if item.error is not None:
            if skipped < 20:
                log(f"skipped: {item.error}")
            skipped += 1
            continue
        items.append(item)
    if skipped > 20:
        log(f"... {skipped - 20} more skipped items not shown")
    if not items:
        raise StanceError("no paragraphs to annotate in the inputs")
    return items


def item_row(item) -> dict:
    row = {"id": item.id, "doc_id": item.doc_id, "text": item.text}
    if item.paragraph is not None:
        row["paragraph"] = item.paragraph
    for k, v in item.carried.items():
        if k not in row and k not in _RESERVED:
            row[k] = v
    return row


def predict_items(labeler, items, progress: bool | None = False, strategy: str = "entropy"):
    """Prediction rows (codebook format plus scores and ``confidence``) and the probabilities."""
    from .inference import decide
    from .suggest import uncertainty

    cb = labeler.codebook
    probs = labeler.predict([it.text for it in items], progress=progress)
    stance, frames = decide(probs, cb, labeler.thresholds)
    unc = uncertainty(probs, cb, labeler.thresholds, strategy)
    rows = []
    for i, item in enumerate(items):
        row = item_row(item)
        row["stance"] = stance[i]
        row["stance_scores"] = {a: {v: round(float(probs.stance[i, j, k]), 4) for k, v in enumerate(cb.value_ids)}
                                for j, a in enumerate(cb.actor_ids)}
        row["frames"] = frames[i]
        row["frame_scores"] = {f: round(float(probs.frames[i, k]), 4) for k, f in enumerate(cb.frame_ids)}
        row["confidence"] = round(1.0 - float(unc.total[i]), 4)
        rows.append(row)
    return rows, probs, unc


# -- agreement ----------------------------------------------------------------------------------
def coder_name(records, path: Path) -> str:
    """The pass's single ``annotator`` when all its records share one, else the file name."""
    names = {str(r.meta.get("annotator")) for r in records if r.meta.get("annotator") not in (None, "")}
    if len(names) == 1 and all(r.meta.get("annotator") not in (None, "") for r in records):
        return names.pop()
    return path.stem


def _unique(names: list[str]) -> list[str]:
    out, seen = [], Counter()
    for n in names:
        seen[n] += 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return out


@dataclass
class AgreementReport:
    coders: list[str]
    result: dict  # stance.metrics.agreement over all coders
    humans: dict | None  # the same over the human passes only, when a model was added
    n_documents: int
    disagreements: list[dict]

    def alphas(self) -> dict:
        """``{"frame:<id>": alpha, "stance:<actor>": ..., "reference:<actor>": ..., "n": n}``."""
        out = {name: fig["value"] for name, fig in self.result["alpha"].items()}
        out["n"] = self.result["n"]
        return out

    def table(self) -> str:
        r = self.result
        pairs = list(r["kappa"])
        pair_names = {p: "-".join(self.coders[int(i)] for i in p.split("-")) for p in pairs}
        level = r.get("ci", 0.95)
        head = ["field", "alpha", f"{level:.0%} interval"]
        if self.humans is not None:
            head.append("alpha humans")
        head += [f"kappa {pair_names[p]}" for p in pairs]
        lines = []
        for name, fig in r["alpha"].items():
            interval = "" if fig["low"] is None else f"[{_num(fig['low'])}, {_num(fig['high'])}]"
            cells = [name, _num(fig["value"]), interval]
            if self.humans is not None:
                cells.append(_num(self.humans["alpha"].get(name, {}).get("value")))
            cells += [_num(r["kappa"][p][name]) for p in pairs]
            lines.append(cells)
        widths = [max(len(str(row[k])) for row in [head] + lines) for k in range(len(head))]

        def fmt(row) -> str:  # names and intervals left-aligned, numbers right-aligned
            return "  ".join(str(c).ljust(w) if k in (0, 2) else str(c).rjust(w)
                             for k, (c, w) in enumerate(zip(row, widths))).rstrip()
        title = (f"Krippendorff's alpha (nominal) and Cohen's kappa: {len(self.coders)} coders "
                 f"({', '.join(self.coders)}) on {r['n']} paragraphs in {self.n_documents} documents; "
                 f"intervals from {r.get('n_boot', '?')} bootstrap replicates by document")
        return "\n".join([title, fmt(head), "-" * len(fmt(head))] + [fmt(row) for row in lines])


def _num(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.3f}"


def agreement_report(pass_paths, codebook: Codebook, model=None, backend: str = "torch", n_boot: int = 1000,
                     seed: int = 0, ci: float = 0.95, log=None) -> AgreementReport:
    """Agreement of annotation passes (files), optionally with a model as one more coder.

    Passes are read with ``stance.data.read_records`` and aligned by id. With ``model`` (a
    model folder) the union of the passes' paragraphs is labelled and added as the coder
    ``model``. Disagreements are taken among the human passes (the model's value alongside,
    under ``model``) or, with a single human pass, between it and the model.
    """
    from .data import read_records
    from .metrics import agreement, disagreements

    paths = [Path(p) for p in pass_paths]
    passes = [read_records(p, codebook) for p in paths]
    names = [coder_name(recs, p) for recs, p in zip(passes, paths)]
    if len(passes) + (model is not None) < 2:
        raise StanceError("agreement needs at least two coders: two or more passes, or one pass and --model")
    model_pass = None
    if model is not None:
        from .labeler import Labeler

        union, seen = [], set()
        for recs in passes:
            for r in recs:
                if r.id not in seen:
                    seen.add(r.id)
                    union.append(r)
        labeler = Labeler.from_pretrained(model, backend=backend, codebook=codebook, progress=False,
                                          log=log)
        model_pass = labeler.predict_records(union)
        names.append("model")
    coders = _unique(names)
    all_passes = passes + ([model_pass] if model_pass is not None else [])
    result = agreement(all_passes, codebook, n_boot=n_boot, seed=seed, ci=ci)
    result.update({"n_boot": n_boot, "ci": ci})
    humans = None
    if model_pass is not None and len(passes) >= 2:
        humans = agreement(passes, codebook, n_boot=0, seed=seed, ci=ci)
    texts, docs = {}, {}
    for recs in passes:
        for r in recs:
            texts.setdefault(r.id, r.text)
            docs.setdefault(r.id, r.doc_id)
    ids_by_pass = [{(r.id if hasattr(r, "id") else r["id"]) for r in p} for p in all_passes]
    counted = {rid for rid in docs if sum(rid in s for s in ids_by_pass) >= 2}
    n_documents = len({docs[i] for i in counted})
    if model_pass is not None and len(passes) >= 2:
        found = disagreements(passes, codebook)
        model_by_id = {p["id"]: p for p in model_pass}
        for d in found:
            kind, _, key = d["field"].partition(":")
            pred = model_by_id.get(d["id"])
            if pred is not None:
                d["model"] = key in pred["frames"] if kind == "frame" else pred["stance"].get(key)
        dis_coders = coders[:len(passes)]
    else:
        found = disagreements(all_passes, codebook)
        dis_coders = coders
    out = []
    for d in found:
        item = {"id": d["id"], "doc_id": d["doc_id"], "field": d["field"],
                "values": {c: v for c, v in zip(dis_coders, d["values"]) if v is not None}}
        if "model" in d:
            item["model"] = d["model"]
        item["text"] = texts.get(d["id"], "")
        out.append(item)
    return AgreementReport(coders, result, humans, n_documents, out)
