"""Scoring predictions against gold labels, and agreement between coders.

Everything follows the "Scoring" section of the codebook standard:

- frames: per-frame precision, recall and F1, their macro average and micro-F1;
- stance, per actor: macro-F1 over the present stance values on the paragraphs whose gold
  value is not the absent value, SemEval-2016's F_avg (mean F1 of ``favor`` and ``against``),
  and reference detection (absent value against the rest) scored on its own;
- every figure with a bootstrap interval resampled by document, because paragraphs of one
  article are not independent.

Figures are dicts ``{"value": v, "low": lo, "high": hi}``. The bootstrap is vectorised: each
paragraph contributes true-positive / false-positive / false-negative counts, these are summed
per document once, and a replicate is a weighted sum of the document counts (the weight of a
document is how many times the replicate drew it), so no metric is recomputed paragraph by
paragraph per replicate. All figures of one call share the same replicates.

Conventions (applied everywhere in this module):

- F1, precision and recall of a class are 0 when their denominator is 0 (for example a class
  with no gold and no predicted items, in the whole set or in a bootstrap replicate).
- A macro average runs over the classes with at least one gold item in the whole
  (unresampled) set; classes without gold support are still reported on their own but are
  left out of the average, and the set of classes averaged stays fixed across replicates. A
  macro average with no class left is ``None``.
- ``f_avg`` always averages F1 of both ``favor`` and ``against`` (the SemEval definition),
  even when one of them has no gold support.
- An actor with no referenced gold paragraph has ``macro_f1`` and ``f_avg`` ``None`` and is
  left out of the means over actors; an actor never referred to in gold is likewise left out
  of the mean reference F1 (its own reference F1 is still reported).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from itertools import combinations

import numpy as np

from .codebook import Codebook
from .errors import StanceError

__all__ = ["score", "format_table", "krippendorff_alpha", "cohen_kappa", "agreement",
           "disagreements", "calibration"]


# -- record access ------------------------------------------------------------------------------
def _get(record, key, default=None):
    """A field of a label record, whether a plain dict or a ``stance.data.Record``."""
    if isinstance(record, dict):
        return record.get(key, default)
    return getattr(record, key, default)


def _rid(record) -> str:
    rid = _get(record, "id")
    if rid is None or str(rid).strip() == "":
        raise StanceError(f"a label record has no 'id': {record!r}"[:300])
    return str(rid)


def _doc_id(record) -> str:
    doc = _get(record, "doc_id")
    return str(doc) if doc not in (None, "") else _rid(record)


def _stance(record) -> dict:
    stance = _get(record, "stance")
    return stance if isinstance(stance, dict) else {}


def _frames(record) -> list:
    frames = _get(record, "frames")
    return list(frames) if frames else []


def _short(ids, limit: int = 10) -> str:
    ids = list(ids)
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f" ... and {len(ids) - limit} more" if len(ids) > limit else "")


def _by_id(records, what: str) -> "OrderedDict[str, object]":
    out, dup = OrderedDict(), []
    for r in records:
        rid = _rid(r)
        if rid in out:
            dup.append(rid)
        out[rid] = r
    if dup:
        raise StanceError(f"duplicate id(s) in the {what}: {_short(dup)}")
    return out


# -- bootstrap machinery ------------------------------------------------------------------------
class _Boot:
    """Per-document sums and bootstrap replicates of per-paragraph count arrays."""

    def __init__(self, doc_ids: list[str], n_boot: int, seed: int, ci: float):
        if not 0 < ci < 1:
            raise StanceError(f"ci must be between 0 and 1, got {ci}")
        if n_boot < 0:
            raise StanceError(f"n_boot must be 0 or more, got {n_boot}")
        docs = sorted(set(doc_ids))
        index = {d: i for i, d in enumerate(docs)}
        self.n_docs = len(docs)
        self.n_units = len(doc_ids)
        member = np.zeros((self.n_docs, self.n_units))
        member[[index[d] for d in doc_ids], np.arange(self.n_units)] = 1.0
        self.member = member  # (D, N): which paragraphs belong to each document
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, self.n_docs, size=(n_boot, self.n_docs))
        offsets = (np.arange(n_boot) * self.n_docs)[:, None]
        self.weights = np.bincount((draws + offsets).ravel(),
                                   minlength=n_boot * self.n_docs
                                   ).reshape(n_boot, self.n_docs).astype(float)  # (B, D)
        self.n_boot = n_boot
        self.ci = ci

    def counts(self, per_unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(whole-set sums, replicate sums) of an array whose first axis is the paragraph."""
        shape = per_unit.shape[1:]
        per_doc = self.member @ per_unit.reshape(self.n_units, -1).astype(float)
        full = per_doc.sum(axis=0).reshape(shape)
        boot = (self.weights @ per_doc).reshape((self.n_boot,) + shape)
        return full, boot

    def fig(self, value, replicates) -> dict:
        """A figure: the whole-set value and the percentile interval of the replicates."""
        value = None if value is None or not np.isfinite(value) else float(value)
        low = high = None
        reps = np.asarray(replicates, dtype=float)
        reps = reps[np.isfinite(reps)] if reps.size else reps
        if value is not None and reps.size:
            tail = (1.0 - self.ci) / 2.0 * 100.0
            low, high = (float(x) for x in np.percentile(reps, [tail, 100.0 - tail]))
        return {"value": value, "low": low, "high": high}


def _safe_div(num, den):
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _prf(c: np.ndarray):
    """Precision, recall, F1 from counts whose last axis is (tp, fp, fn)."""
    tp, fp, fn = c[..., 0], c[..., 1], c[..., 2]
    return (_safe_div(tp, tp + fp), _safe_div(tp, tp + fn), _safe_div(2 * tp, 2 * tp + fp + fn))


def _masked_mean(values: np.ndarray, mask: np.ndarray):
    """Mean over the last axis of the entries where ``mask`` (same last axis) is True."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return None
    return values[..., mask].mean(axis=-1)


def _tp_fp_fn(g: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.stack([g & p, ~g & p, g & ~p], axis=-1)


# -- scoring ------------------------------------------------------------------------------------
def score(gold, pred, codebook: Codebook, n_boot: int = 1000, seed: int = 0,
          ci: float = 0.95) -> dict:
    """Score predictions against gold labels, every figure with a bootstrap-by-document interval.

    ``gold`` and ``pred`` are lists of label records (dicts in the codebook's label format or
    ``stance.data.Record``), aligned by ``id``; a gold id without a prediction is an error,
    predictions for ids not in gold are ignored. ``doc_id`` defaults to ``id``. The bootstrap
    draws ``n_boot`` replicates of the documents with replacement (all paragraphs of a drawn
    document come along) from ``numpy.random.default_rng(seed)``; intervals are the percentile
    ``ci`` intervals. See the module docstring for how empty classes are treated.

    With an ``absent_value`` the stance of an actor is scored on the paragraphs whose gold value
    is not absent (a predicted absent value there is simply a wrong label) and macro-F1 averages
    the present values; reference detection scores absent against the rest over all paragraphs.
    Without one (a SemEval-style favor/against/none codebook) stance is scored over all values
    on all paragraphs and there is no reference detection. ``stance_pooled_f_avg`` pools all
    actors' (gold, pred) pairs before computing F_avg (the official SemEval-2016 Task A
    measure); it is given whenever the codebook has both ``favor`` and ``against``.
    """
    gold = list(gold)
    if not gold:
        raise StanceError("no gold records to score")
    gold_by_id = _by_id(gold, "gold labels")
    pred_by_id = _by_id(pred, "predictions")
    missing = [i for i in gold_by_id if i not in pred_by_id]
    if missing:
        raise StanceError(f"{len(missing)} gold id(s) have no prediction: {_short(missing)}")

    ids = list(gold_by_id)
    preds = [pred_by_id[i] for i in ids]
    golds = [gold_by_id[i] for i in ids]
    boot = _Boot([_doc_id(g) for g in golds], n_boot, seed, ci)
    fig = boot.fig

    actors, values, frames = codebook.actor_ids, codebook.value_ids, codebook.frame_ids
    absent = codebook.absent_value
    n = len(ids)

    # -- encode labels ------------------------------------------------------------------------
    value_index = {v: k for k, v in enumerate(values)}

    def encode_stance(records, what, partial=False):
        out = np.zeros((n, len(actors)), dtype=int)
        for row, r in enumerate(records):
            st = _stance(r)
            for col, a in enumerate(actors):
                v = st.get(a)
                if v is None and partial:  # not annotated: left out of every stance figure
                    out[row, col] = -1
                    continue
                if v not in value_index:
                    problem = "no value" if v is None else f"the value {v!r}, not one of {values}"
                    raise StanceError(f"{what} {ids[row]!r}: actor {a!r} has {problem}")
                out[row, col] = value_index[v]
        return out

    def encode_frames(records, what):
        out = np.zeros((n, len(frames)), dtype=bool)
        col_of = {f: k for k, f in enumerate(frames)}
        for row, r in enumerate(records):
            for f in _frames(r):
                if f not in col_of:
                    raise StanceError(f"{what} {ids[row]!r}: unknown frame {f!r} "
                                      f"(codebook frames: {', '.join(frames) or 'none'})")
                out[row, col_of[f]] = True
        return out

    g_st, p_st = encode_stance(golds, "gold", codebook.partial), encode_stance(preds, "prediction")
    annotated = g_st >= 0  # (N, A); all True unless the codebook allows partial annotation
    g_fr, p_fr = encode_frames(golds, "gold"), encode_frames(preds, "prediction")

    result: dict = {"n_paragraphs": n, "n_documents": boot.n_docs, "n_boot": n_boot, "ci": ci}

    # -- frames -------------------------------------------------------------------------------
    full, reps = boot.counts(_tp_fp_fn(g_fr, p_fr))  # (F, 3), (B, F, 3)
    (pf, rf, ff), (pb, rb, fb) = _prf(full), _prf(reps)
    support = full[:, 0] + full[:, 2]
    result["frames"] = {
        f: {"f1": fig(ff[k], fb[:, k]), "precision": fig(pf[k], pb[:, k]),
            "recall": fig(rf[k], rb[:, k]), "support": int(round(support[k]))}
        for k, f in enumerate(frames)
    }
    keep = support > 0
    result["frames_macro_f1"] = (fig(_masked_mean(ff, keep), _masked_mean(fb, keep))
                                 if keep.any() else fig(None, []))
    micro_full, micro_reps = _prf(full.sum(axis=0))[2], _prf(reps.sum(axis=1))[2]
    result["frames_micro_f1"] = fig(micro_full, micro_reps) if frames else fig(None, [])

    # -- stance -------------------------------------------------------------------------------
    eval_values = [v for v in values if v != absent]  # present values, or all without absent
    eval_idx = np.array([value_index[v] for v in eval_values])
    if absent is None:
        rows = annotated.copy()
    else:
        rows = annotated & (g_st != value_index[absent])  # (N, A) referenced paragraphs in gold
    g_is = g_st[:, :, None] == eval_idx  # (N, A, V)
    p_is = p_st[:, :, None] == eval_idx
    st_counts = _tp_fp_fn(g_is, p_is) & rows[:, :, None, None]  # (N, A, V, 3)
    st_full, st_reps = boot.counts(st_counts)  # (A, V, 3), (B, A, V, 3)
    f1_full, f1_reps = _prf(st_full)[2], _prf(st_reps)[2]  # (A, V), (B, A, V)
    v_support = st_full[..., 0] + st_full[..., 2]  # (A, V)
    polar = [v for v in ("favor", "against") if v in eval_values]
    polar_k = [eval_values.index(v) for v in polar]
    has_polar = len(polar_k) == 2

    stance_out = {}
    macro_full, macro_reps, favg_full, favg_reps = [], [], [], []
    for k, a in enumerate(actors):
        n_ref = int(rows[:, k].sum())
        keep = v_support[k] > 0
        if keep.any():
            m_f, m_b = _masked_mean(f1_full[k], keep), _masked_mean(f1_reps[:, k], keep)
            macro_full.append(m_f)
            macro_reps.append(m_b)
            macro = fig(m_f, m_b)
        else:
            macro = fig(None, [])
        favg = None
        if has_polar and n_ref > 0:
            fa_f, fa_b = f1_full[k, polar_k].mean(), f1_reps[:, k, polar_k].mean(axis=-1)
            favg_full.append(fa_f)
            favg_reps.append(fa_b)
            favg = fig(fa_f, fa_b)
        stance_out[a] = {"macro_f1": macro, "f_avg": favg,
                         "per_value_f1": {v: float(f1_full[k, j]) for j, v in enumerate(eval_values)},
                         "n": n_ref}
    result["stance"] = stance_out
    result["stance_macro_f1"] = (fig(np.mean(macro_full), np.mean(macro_reps, axis=0))
                                 if macro_full else fig(None, []))
    result["stance_f_avg"] = (fig(np.mean(favg_full), np.mean(favg_reps, axis=0))
                              if favg_full else None)
    if has_polar:
        pooled_full = _prf(st_full.sum(axis=0))[2][polar_k].mean()
        pooled_reps = _prf(st_reps.sum(axis=1))[2][:, polar_k].mean(axis=-1)
        result["stance_pooled_f_avg"] = fig(pooled_full, pooled_reps)
    else:
        result["stance_pooled_f_avg"] = None

    # -- reference detection ------------------------------------------------------------------
    if absent is None:
        result["reference"] = {}
        result["reference_f1"] = None
        result["reference_micro_f1"] = None
    else:
        a_idx = value_index[absent]
        ref_counts = _tp_fp_fn(g_st != a_idx, p_st != a_idx) & annotated[:, :, None]
        ref_full, ref_reps = boot.counts(ref_counts)  # (A, 3)
        rf_full, rf_reps = _prf(ref_full)[2], _prf(ref_reps)[2]
        result["reference"] = {a: {"f1": fig(rf_full[k], rf_reps[:, k])}
                               for k, a in enumerate(actors)}
        keep = (ref_full[:, 0] + ref_full[:, 2]) > 0
        result["reference_f1"] = (fig(_masked_mean(rf_full, keep), _masked_mean(rf_reps, keep))
                                  if keep.any() else fig(None, []))
        result["reference_micro_f1"] = fig(_prf(ref_full.sum(axis=0))[2],
                                           _prf(ref_reps.sum(axis=1))[2])
    return result


# -- table --------------------------------------------------------------------------------------
def _num(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def format_table(result: dict, title: str | None = None) -> str:
    """A plain-text table of a ``score`` result: one row per figure (name, value, interval)."""
    rows: list[tuple[str, dict | None] | str] = []
    frames = result.get("frames", {})
    if frames:
        rows.append("frames")
        for f, d in frames.items():
            rows.append((f"  {f} F1 (support {d['support']})", d["f1"]))
            rows.append((f"  {f} precision", d["precision"]))
            rows.append((f"  {f} recall", d["recall"]))
        rows.append(("  frames macro-F1", result.get("frames_macro_f1")))
        rows.append(("  frames micro-F1", result.get("frames_micro_f1")))
    stance = result.get("stance", {})
    if stance:
        rows.append("stance")
        for a, d in stance.items():
            rows.append((f"  {a} macro-F1 (n={d['n']})", d["macro_f1"]))
            if d.get("f_avg") is not None:
                rows.append((f"  {a} F_avg", d["f_avg"]))
        rows.append(("  stance macro-F1 (mean over actors)", result.get("stance_macro_f1")))
        if result.get("stance_f_avg") is not None:
            rows.append(("  stance F_avg (mean over actors)", result["stance_f_avg"]))
        if result.get("stance_pooled_f_avg") is not None:
            rows.append(("  stance F_avg (actors pooled)", result["stance_pooled_f_avg"]))
    reference = result.get("reference") or {}
    if reference:
        rows.append("reference detection")
        for a, d in reference.items():
            rows.append((f"  {a} F1", d["f1"]))
        rows.append(("  reference F1 (mean over actors)", result.get("reference_f1")))
        rows.append(("  reference micro-F1", result.get("reference_micro_f1")))

    width = max([len(r[0]) for r in rows if isinstance(r, tuple)] + [len("figure")])
    level = result.get("ci", 0.95)
    head = f"{'figure':<{width}}  {'value':>6}  {f'{level:.0%} interval'}"
    lines = []
    if title:
        lines.append(title)
    if "n_paragraphs" in result:
        lines.append(f"{result['n_paragraphs']} paragraphs, {result['n_documents']} documents, "
                     f"{result.get('n_boot', '?')} bootstrap replicates by document")
    lines += [head, "-" * len(head)]
    for r in rows:
        if isinstance(r, str):
            lines.append(r)
            continue
        name, f = r
        f = f or {"value": None, "low": None, "high": None}
        interval = ("" if f["low"] is None else f"[{_num(f['low'])}, {_num(f['high'])}]")
        lines.append(f"{name:<{width}}  {_num(f['value']):>6}  {interval}".rstrip())
    return "\n".join(lines)


# -- agreement ----------------------------------------------------------------------------------
def _missing(v) -> bool:
    if v is None:
        return True
    try:
        return bool(isinstance(v, (float, np.floating)) and math.isnan(v))
    except TypeError:
        return False


def _delta(level: str, vals: list, marginals: np.ndarray) -> np.ndarray:
    """Krippendorff's squared difference function for the given metric level."""
    k = len(vals)
    if level == "nominal":
        return 1.0 - np.eye(k)
    try:
        x = np.array(vals, dtype=float)
    except (TypeError, ValueError):
        raise StanceError(f"{level} alpha needs numeric values, found {vals!r}") from None
    if level == "interval":
        return (x[:, None] - x[None, :]) ** 2
    if level == "ratio":
        s = x[:, None] + x[None, :]
        return _safe_div((x[:, None] - x[None, :]) ** 2, s ** 2)
    if level == "ordinal":  # vals are sorted; marginals n_c in that order
        cum = np.concatenate([[0.0], np.cumsum(marginals)])
        i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        between = cum[hi + 1] - cum[lo]
        return (between - (marginals[i] + marginals[j]) / 2.0) ** 2 * (i != j)
    raise StanceError(f"unknown level {level!r}: use nominal, ordinal, interval or ratio")


def _unit_coincidences(counts: np.ndarray) -> np.ndarray:
    """Per-unit coincidence matrices from per-unit value counts (U, V) -> (U, V, V)."""
    m = counts.sum(axis=1)
    pairs = counts[:, :, None] * counts[:, None, :] - counts[:, :, None] * np.eye(counts.shape[1])
    scale = np.divide(1.0, m - 1, out=np.zeros(len(m)), where=m >= 2)
    return pairs * scale[:, None, None]


def _alpha_from_coincidences(o: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """alpha = 1 - (n - 1) * sum(o * delta) / sum(n_c n_k delta), over the last two axes."""
    n_c = o.sum(axis=-1)
    n = n_c.sum(axis=-1)
    observed = (o * delta).sum(axis=(-2, -1))
    expected = (n_c[..., :, None] * n_c[..., None, :] * delta).sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = 1.0 - (n - 1.0) * observed / expected
    return np.where(expected > 0, alpha, np.nan)


def _value_counts(data) -> tuple[list, np.ndarray]:
    units = [[v for v in row if not _missing(v)] for row in data]
    distinct = {v for row in units for v in row}
    try:
        vals = sorted(distinct)
    except TypeError:
        vals = sorted(distinct, key=repr)
    index = {v: k for k, v in enumerate(vals)}
    counts = np.zeros((len(units), len(vals)))
    for u, row in enumerate(units):
        for v in row:
            counts[u, index[v]] += 1
    return vals, counts


def krippendorff_alpha(data, level: str = "nominal") -> float:
    """Krippendorff's alpha for a units x coders matrix with ``None``/NaN for missing values.

    Any number of coders; units with fewer than two values are not pairable and are ignored.
    ``level`` is ``nominal`` (the default, what the stance and frame labels need), ``ordinal``,
    ``interval`` or ``ratio``. Returns NaN when alpha is undefined (no variation in the
    pairable values, or no pairable unit at all).
    """
    if hasattr(data, "tolist"):
        data = data.tolist()
    vals, counts = _value_counts(data)
    if not vals:
        return float("nan")
    o = _unit_coincidences(counts).sum(axis=0)
    delta = _delta(level, vals, o.sum(axis=1))
    return float(_alpha_from_coincidences(o, delta))


def cohen_kappa(a, b) -> float:
    """Cohen's kappa of two coders' label lists, skipping pairs where either label is missing.

    Returns NaN when kappa is undefined (no pairs, or chance agreement of 1).
    """
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise StanceError(f"cohen_kappa needs two lists of the same length, got {len(a)} and {len(b)}")
    pairs = [(x, y) for x, y in zip(a, b) if not _missing(x) and not _missing(y)]
    if not pairs:
        return float("nan")
    labels = sorted({v for p in pairs for v in p}, key=repr)
    index = {v: k for k, v in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)))
    for x, y in pairs:
        cm[index[x], index[y]] += 1
    total = cm.sum()
    observed = np.trace(cm) / total
    expected = float((cm.sum(axis=1) * cm.sum(axis=0)).sum()) / total ** 2
    if expected >= 1.0:
        return float("nan")
    return float((observed - expected) / (1.0 - expected))


def _fields(codebook: Codebook, with_reference: bool = True) -> list[tuple[str, callable]]:
    """(name, value-of-record) for every field agreement is measured on."""
    out = []
    for f in codebook.frame_ids:
        out.append((f"frame:{f}", lambda r, f=f: f in _frames(r)))
    for a in codebook.actor_ids:
        out.append((f"stance:{a}", lambda r, a=a: _stance(r).get(a)))
    if with_reference and codebook.absent_value is not None:
        absent = codebook.absent_value
        for a in codebook.actor_ids:
            def referred(r, a=a):
                v = _stance(r).get(a)
                return None if v is None else v != absent
            out.append((f"reference:{a}", referred))
    return out


def _passes(passes) -> tuple[list[dict], list[str], dict]:
    """Each pass as {id: record}; every id in order of first appearance; doc_id of each id."""
    maps = [_by_id(p, f"pass {k}") for k, p in enumerate(passes)]
    ids, docs = [], {}
    for m in maps:
        for rid, r in m.items():
            if rid not in docs:
                ids.append(rid)
                docs[rid] = _doc_id(r)
    return maps, ids, docs


def agreement(passes, codebook: Codebook, n_boot: int = 1000, seed: int = 0,
              ci: float = 0.95) -> dict:
    """Inter-coder agreement of several annotation passes of the same paragraphs.

    ``passes`` is a list of coders' label lists, aligned by ``id``; an id missing from a pass is
    a missing value for that coder. Only ids labelled by at least two coders count (``n``).
    Fields: ``frame:<id>`` (frame present or not), ``stance:<actor>`` (the full stance value,
    the absent value included) and, with an absent value, ``reference:<actor>`` (referred or
    not). ``alpha`` holds nominal Krippendorff's alpha per field as a figure with a bootstrap
    interval resampled by document (value ``None`` where alpha is undefined, e.g. every coder
    gave the same value everywhere); ``kappa`` holds Cohen's kappa per field for every pair of
    passes, keyed ``"<i>-<j>"`` with 0-based pass indices (NaN where undefined).
    """
    maps, ids, docs = _passes(passes)
    ids = [i for i in ids if sum(i in m for m in maps) >= 2]
    result = {"n": len(ids), "alpha": {}, "kappa": {}}
    fields = _fields(codebook)
    if not ids:
        result["alpha"] = {name: {"value": None, "low": None, "high": None} for name, _ in fields}
        return result
    boot = _Boot([docs[i] for i in ids], n_boot, seed, ci)
    for name, get in fields:
        data = [[get(m[i]) if i in m else None for m in maps] for i in ids]
        vals, counts = _value_counts(data)
        if not vals:
            result["alpha"][name] = boot.fig(None, [])
            continue
        full, reps = boot.counts(_unit_coincidences(counts))
        delta = _delta("nominal", vals, full.sum(axis=1))
        result["alpha"][name] = boot.fig(_alpha_from_coincidences(full, delta),
                                         _alpha_from_coincidences(reps, delta))
    for i, j in combinations(range(len(maps)), 2):
        both = [rid for rid in ids if rid in maps[i] and rid in maps[j]]
        result["kappa"][f"{i}-{j}"] = {
            name: cohen_kappa([get(maps[i][r]) for r in both], [get(maps[j][r]) for r in both])
            for name, get in fields
        }
    return result


def disagreements(passes, codebook: Codebook) -> list[dict]:
    """Every (id, field) where coders who labelled the id differ.

    Each item is ``{"id", "doc_id", "field", "values"}``: ``field`` is ``frame:<id>`` or
    ``stance:<actor>`` and ``values`` holds each pass's value in pass order (``True``/``False``
    for a frame, the stance value for an actor, ``None`` where the pass lacks the id).
    """
    maps, ids, docs = _passes(passes)
    out = []
    for rid in ids:
        if sum(rid in m for m in maps) < 2:
            continue
        for name, get in _fields(codebook, with_reference=False):
            values = [get(m[rid]) if rid in m else None for m in maps]
            if len({repr(v) for v in values if v is not None}) > 1:
                out.append({"id": rid, "doc_id": docs[rid], "field": name, "values": values})
    return out


# -- calibration --------------------------------------------------------------------------------
def calibration(probs, correct, n_bins: int = 10) -> dict:
    """Reliability of predicted probabilities: equal-width bins and expected calibration error.

    ``probs`` are probabilities in [0, 1] (of the predicted stance value, say, or of a frame being
    present) and ``correct`` the matching 0/1 outcomes (the prediction was right, the frame is in
    gold); both are flattened. Bins split [0, 1] into ``n_bins`` equal parts, ``[low, high)``
    with 1.0 in the last bin. Returns a dict of numpy arrays ``edges`` (n_bins + 1), ``count``,
    ``confidence`` (mean probability) and ``accuracy`` (mean outcome) per bin (NaN in an empty
    bin), plus ``ece`` (the count-weighted mean of |accuracy - confidence| over the bins),
    ``mce`` (the largest such gap over non-empty bins) and ``n``.
    """
    p = np.asarray(probs, dtype=float).ravel()
    y = np.asarray(correct, dtype=float).ravel()
    if p.shape != y.shape:
        raise StanceError(f"calibration needs as many outcomes as probabilities, got {p.size} and {y.size}")
    if p.size == 0:
        raise StanceError("calibration needs at least one probability")
    if int(n_bins) != n_bins or n_bins < 1:
        raise StanceError(f"n_bins must be a positive integer, got {n_bins!r}")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise StanceError("probabilities must be finite and between 0 and 1")
    if not np.isin(y, (0.0, 1.0)).all():
        raise StanceError("outcomes must be 0/1 (or False/True)")
    n_bins = int(n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.minimum((p * n_bins).astype(int), n_bins - 1)
    count = np.bincount(which, minlength=n_bins).astype(float)
    conf_sum = np.bincount(which, weights=p, minlength=n_bins)
    acc_sum = np.bincount(which, weights=y, minlength=n_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        confidence = np.where(count > 0, conf_sum / count, np.nan)
        accuracy = np.where(count > 0, acc_sum / count, np.nan)
    gap = np.abs(accuracy - confidence)
    filled = count > 0
    return {"edges": edges, "count": count.astype(int), "confidence": confidence, "accuracy": accuracy,
            "ece": float((count[filled] / p.size * gap[filled]).sum()), "mce": float(gap[filled].max()),
            "n": int(p.size)}
