"""What to annotate next: the paragraphs the model is least sure of, spread out.

Uncertainty of one paragraph (every part lies in [0, 1]):

- stance, per actor: ``entropy`` (the default) is the entropy of the actor's distribution over
  the stance values divided by its maximum ``log(V)``; ``margin`` is one minus the gap between
  the two most probable values;
- frames, per frame: closeness of the frame's probability ``p`` to its decision threshold
  ``t``: ``1 - |p - t| / t`` below the threshold and ``1 - |p - t| / (1 - t)`` above it, so 1 at
  the threshold and 0 at a certain 0 or 1;
- the paragraph's score: half the mean over actors plus half the mean over frames (the stance
  mean alone for a codebook without frames). ``1 - score`` is the confidence the tasks carry.

Selection is greedy and round-robin over several queues: the overall score, each actor's
stance uncertainty and each frame's uncertainty, each sorted from least to most sure. Every
turn takes the next paragraph of the next queue that is still eligible, so each actor's and
each frame's most uncertain paragraphs are represented, not only the overall top. A paragraph
is eligible unless it was picked already, its document already has ``per_doc`` picks, or it is
a near-duplicate (same first ``dedup_words`` words, case and punctuation ignored) of a picked
or excluded paragraph. Paragraphs that do not look English are never suggested.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .codebook import Codebook
from .errors import StanceError

STRATEGIES = ("entropy", "margin")


@dataclass
class Uncertainty:
    stance: np.ndarray  # (n, n_actors), each in [0, 1]
    frames: np.ndarray  # (n, n_frames), each in [0, 1]
    total: np.ndarray  # (n,)


def stance_uncertainty(stance_probs: np.ndarray, strategy: str = "entropy") -> np.ndarray:
    """(n, actors, values) probabilities -> (n, actors) uncertainty in [0, 1]."""
    p = np.asarray(stance_probs, dtype=float)
    n_values = p.shape[-1]
    if strategy == "entropy":
        q = np.clip(p, 1e-12, 1.0)
        return np.clip(-(p * np.log(q)).sum(-1) / np.log(n_values), 0.0, 1.0)
    if strategy == "margin":
        top = np.sort(p, axis=-1)
        return np.clip(1.0 - (top[..., -1] - top[..., -2]), 0.0, 1.0)
    raise StanceError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")


def frame_uncertainty(frame_probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(n, frames) probabilities and per-frame thresholds -> closeness to the threshold in [0, 1]."""
    p = np.asarray(frame_probs, dtype=float)
    t = np.clip(np.asarray(thresholds, dtype=float), 1e-6, 1 - 1e-6)
    span = np.where(p >= t, 1.0 - t, t)
    return np.clip(1.0 - np.abs(p - t) / span, 0.0, 1.0)


def uncertainty(probs, codebook: Codebook, thresholds: dict, strategy: str = "entropy") -> Uncertainty:
    """Per-actor, per-frame and overall uncertainty of ``stance.inference.Probabilities``."""
    su = stance_uncertainty(probs.stance, strategy)
    t = np.array([thresholds.get(f, 0.5) for f in codebook.frame_ids], dtype=float)
    n = su.shape[0]
    fu = frame_uncertainty(probs.frames, t) if codebook.frame_ids else np.zeros((n, 0))
    total = su.mean(axis=1)
    if fu.shape[1]:
        total = 0.5 * total + 0.5 * fu.mean(axis=1)
    return Uncertainty(su, fu, total)


def near_duplicate_key(text: str, words: int = 12) -> str:
    """The first ``words`` words, lower-cased, punctuation ignored."""
    return " ".join(re.findall(r"\w+", str(text).lower())[:words])


def select(doc_ids: list[str], texts: list[str], unc: Uncertainty, codebook: Codebook, n: int,
           per_doc: int = 2, dedup_words: int = 12, exclude_keys=(), eligible=None) -> list[tuple[int, str]]:
    """Pick up to ``n`` paragraph indices as ``(index, queue name)``, round-robin over the queues.

    Queues: ``overall``, ``stance:<actor>`` per actor, ``frame:<id>`` per frame; see the module
    docstring. ``eligible`` (a boolean per paragraph) rules paragraphs out beforehand.
    """
    if n <= 0:
        raise StanceError(f"-n must be 1 or more, got {n}")
    if per_doc <= 0:
        raise StanceError(f"--per-doc must be 1 or more, got {per_doc}")
    count = len(texts)
    queues = [("overall", np.argsort(-unc.total, kind="stable"))]
    queues += [(f"stance:{a}", np.argsort(-unc.stance[:, k], kind="stable"))
               for k, a in enumerate(codebook.actor_ids)]
    queues += [(f"frame:{f}", np.argsort(-unc.frames[:, k], kind="stable"))
               for k, f in enumerate(codebook.frame_ids)]
    pointer = [0] * len(queues)
    ok = np.ones(count, bool) if eligible is None else np.asarray(eligible, bool).copy()
    keys = [near_duplicate_key(t, dedup_words) for t in texts]
    taken_keys = set(exclude_keys)
    per = {}
    picked: list[tuple[int, str]] = []

    def usable(i: int) -> bool:
        return ok[i] and per.get(doc_ids[i], 0) < per_doc and keys[i] not in taken_keys

    active = True
    while len(picked) < n and active:
        active = False
        for q, (name, order) in enumerate(queues):
            while pointer[q] < count and not usable(int(order[pointer[q]])):
                pointer[q] += 1
            if pointer[q] >= count:
                continue
            active = True
            i = int(order[pointer[q]])
            pointer[q] += 1
            picked.append((i, name))
            ok[i] = False
            per[doc_ids[i]] = per.get(doc_ids[i], 0) + 1
            taken_keys.add(keys[i])
            if len(picked) >= n:
                break
    return picked


def read_exclude(paths) -> tuple[set, list[str]]:
    """Ids and texts of already annotated paragraphs (any JSONL with ``id`` and ``text``)."""
    import json

    ids, texts = set(), []
    for p in paths or ():
        path = Path(p)
        if not path.exists():
            raise StanceError(f"{path}: file not found")
        for n, line in enumerate(path.read_text(encoding="utf-8-sig").split("\n"), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise StanceError(f"{path}:{n}: bad JSON: {e.msg} (column {e.colno})") from None
            if not isinstance(obj, dict) or obj.get("id") in (None, ""):
                raise StanceError(f"{path}:{n}: expected a JSON object with an 'id'")
            ids.add(str(obj["id"]))
            if isinstance(obj.get("text"), str):
                texts.append(obj["text"])
    return ids, texts


def suggest(items, labeler, n: int = 200, per_doc: int = 2, strategy: str = "entropy", dedup_words: int = 12,
            exclude=(), log=None) -> list[dict]:
    """The ``n`` paragraphs to annotate next, as prediction rows with uncertainty fields.

    ``items`` are ``stance.inputs.Item`` paragraphs; ``exclude`` names JSONL files of paragraphs
    already annotated (skipped by id, and their texts count as taken for near-duplicates). Rows
    come most uncertain first, each with ``uncertainty``, ``uncertainty_detail`` (per actor and
    per frame) and ``picked_for`` (the queue that picked it).
    """
    from .annotation import predict_items
    from .text import looks_english

    log = log or (lambda m: print(m, file=sys.stderr))
    if strategy not in STRATEGIES:
        raise StanceError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    ex_ids, ex_texts = read_exclude(exclude)
    items = [it for it in items if it.id not in ex_ids]
    if not items:
        raise StanceError("no paragraphs left to suggest (all are excluded)")
    cb = labeler.codebook
    rows, _, unc = predict_items(labeler, items, strategy=strategy)
    texts = [it.text for it in items]
    english = np.array([looks_english(t) for t in texts])
    exclude_keys = {near_duplicate_key(t, dedup_words) for t in ex_texts}
    picked = select([it.doc_id for it in items], texts, unc, cb, n, per_doc=per_doc, dedup_words=dedup_words,
                    exclude_keys=exclude_keys, eligible=english)
    if len(picked) < n:
        log(f"only {len(picked)} of {n} paragraphs could be suggested (at most {per_doc} per document, "
            f"near-duplicates and non-English paragraphs skipped, of {len(items)} candidates); "
            f"raise --per-doc or add inputs")
    out = []
    for i, queue in sorted(picked, key=lambda p: -unc.total[p[0]]):
        row = rows[i]
        row["uncertainty"] = round(float(unc.total[i]), 4)
        row["uncertainty_detail"] = {
            "stance": {a: round(float(unc.stance[i, k]), 4) for k, a in enumerate(cb.actor_ids)},
            "frames": {f: round(float(unc.frames[i, k]), 4) for k, f in enumerate(cb.frame_ids)},
        }
        row["picked_for"] = queue
        out.append(row)
    return out
