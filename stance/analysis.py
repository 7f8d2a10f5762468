"""Tidy tables for analysing labelled corpora and evaluation results (used by the notebooks).

- ``group_means``: the mean of label columns per group (outlet, year...), each with a bootstrap
  interval resampled by document, as the codebook asks for every figure;
- ``net_stance``: a stance column as +1 (favor), -1 (against), 0 (neutral), NaN (not referred);
- ``tidy_scores``: ``stance.metrics.score`` results of several systems as one long table.
"""
from __future__ import annotations

import numpy as np

from .errors import StanceError
from .metrics import _Boot

__all__ = ["group_means", "net_stance", "tidy_scores", "HEADLINE"]

# The headline figures of a score result, in the order the model card reports them.
HEADLINE = {
    "frames_macro_f1": "frames macro-F1",
    "frames_micro_f1": "frames micro-F1",
    "stance_macro_f1": "stance macro-F1",
    "stance_f_avg": "stance F_avg",
    "stance_pooled_f_avg": "stance F_avg (pooled)",
    "reference_f1": "reference F1",
    "reference_micro_f1": "reference micro-F1",
}


def group_means(df, columns, by=None, doc_col: str = "doc_id", n_boot: int = 1000, seed: int = 0,
                ci: float = 0.95):
    """Mean of each column per group, with a bootstrap interval resampled by document.

    ``df`` has one row per paragraph; ``columns`` are numeric (a 0/1 label column gives a
    prevalence); NaN means "does not apply" and the row is left out of that column's mean (so a
    column that is NaN where an actor is not referred to gives a mean over referring paragraphs).
    ``by`` is None (the whole table), a column name or a list of them. Within each group the
    documents are drawn with replacement ``n_boot`` times (all paragraphs of a drawn document come
    along) and the interval is the percentile ``ci`` interval of the replicates' ratio of sums.

    Returns a long DataFrame: the ``by`` columns, ``column``, ``value``, ``low``, ``high``,
    ``n`` (paragraphs counted) and ``n_docs`` (documents with at least one of them); a group
    and column with no paragraph counted has ``value`` NaN.
    """
    import pandas as pd

    columns = [columns] if isinstance(columns, str) else list(columns)
    keys = [] if by is None else ([by] if isinstance(by, str) else list(by))
    missing = [c for c in [*columns, *keys, doc_col] if c not in df.columns]
    if missing:
        raise StanceError(f"no column(s) {', '.join(map(repr, missing))}; the columns are: "
                          f"{', '.join(map(str, df.columns))}")
    if not columns:
        raise StanceError("group_means needs at least one column")
    try:
        values = df[columns].astype(float).to_numpy()
    except (TypeError, ValueError) as e:
        raise StanceError(f"group_means needs numeric columns: {e}") from None

    rows = []
    all_docs = df[doc_col].astype(str).to_numpy()
    if keys:
        grouped = df.groupby(keys, sort=True).indices  # group key -> row positions
        groups = [(k if isinstance(k, tuple) else (k,), pos) for k, pos in grouped.items()]
    else:
        groups = [((), np.arange(len(df)))]
    for key, pos in groups:
        x = values[pos]  # (N, C)
        docs = all_docs[pos].tolist()
        present = ~np.isnan(x)
        boot = _Boot(docs, n_boot, seed, ci)
        full, reps = boot.counts(np.stack([np.where(present, x, 0.0), present.astype(float)], axis=-1))
        per_doc_present = boot.member @ present.astype(float)  # (D, C)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_full = full[:, 0] / full[:, 1]
            mean_reps = reps[..., 0] / reps[..., 1]
        for k, col in enumerate(columns):
            fig = boot.fig(mean_full[k], mean_reps[:, k])
            rows.append({**dict(zip(keys, key)), "column": col,
                         "value": np.nan if fig["value"] is None else fig["value"],
                         "low": np.nan if fig["low"] is None else fig["low"],
                         "high": np.nan if fig["high"] is None else fig["high"],
                         "n": int(full[k, 1]), "n_docs": int((per_doc_present[:, k] > 0).sum())})
    return pd.DataFrame(rows, columns=[*keys, "column", "value", "low", "high", "n", "n_docs"])


def net_stance(values, favor: str = "favor", against: str = "against", neutral: str = "neutral"):
    """+1 for ``favor``, -1 for ``against``, 0 for ``neutral``, NaN for anything else (``none``).

    The mean over a group is the net stance toward an actor among the paragraphs that refer to
    it: from -1 (all against) to +1 (all in favour). Accepts a pandas Series (returns one) or any
    sequence (returns a float array).
    """
    mapping = {favor: 1.0, against: -1.0, neutral: 0.0}
    if hasattr(values, "map"):
        return values.map(mapping).astype(float)
    return np.array([mapping.get(v, np.nan) for v in values], dtype=float)


def tidy_scores(results: dict):
    """``{system: stance.metrics.score(...) result}`` as one long DataFrame.

    Columns: ``system``; ``kind`` (``headline``, ``frame``, ``stance`` or ``reference``);
    ``target`` (the frame or actor id, empty for headline figures); ``figure`` (a readable
    name); ``value``, ``low``, ``high`` (the bootstrap interval); ``support`` (gold frame
    paragraphs, or gold paragraphs referring to the actor; NaN for headline figures).
    """
    import pandas as pd

    def fig(f):
        f = f or {}
        return {k: (np.nan if f.get(k) is None else float(f[k])) for k in ("value", "low", "high")}

    rows = []
    for system, s in results.items():
        for key, name in HEADLINE.items():
            if s.get(key) is not None:
                rows.append({"system": system, "kind": "headline", "target": "", "figure": name,
                             **fig(s[key]), "support": np.nan})
        for f, d in s.get("frames", {}).items():
            for m in ("f1", "precision", "recall"):
                rows.append({"system": system, "kind": "frame", "target": f,
                             "figure": f"{f} {'F1' if m == 'f1' else m}", **fig(d[m]), "support": d["support"]})
        for a, d in s.get("stance", {}).items():
            rows.append({"system": system, "kind": "stance", "target": a, "figure": f"{a} macro-F1",
                         **fig(d["macro_f1"]), "support": d["n"]})
            if d.get("f_avg") is not None:
                rows.append({"system": system, "kind": "stance", "target": a, "figure": f"{a} F_avg",
                             **fig(d["f_avg"]), "support": d["n"]})
        for a, d in (s.get("reference") or {}).items():
            n = s.get("stance", {}).get(a, {}).get("n", np.nan)
            rows.append({"system": system, "kind": "reference", "target": a, "figure": f"{a} reference F1",
                         **fig(d["f1"]), "support": n})
    return pd.DataFrame(rows, columns=["system", "kind", "target", "figure", "value", "low", "high", "support"])
