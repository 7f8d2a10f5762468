"""Figures for evaluation and corpus analysis (matplotlib; needs the ``notebooks`` extra).

Every function takes plain arrays or DataFrames, draws on ``ax`` when given (else on a new
figure) and returns the Axes (or, for a grid, the Figure). Nothing is shown or saved here: in a
notebook the inline backend shows the figure; in a script, call ``fig.savefig``. Without a
display matplotlib falls back to its Agg backend.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgba

__all__ = ["interval_dots", "interval_lines", "heatmap", "confusion_matrix", "confusion_grid",
           "pr_curve", "reliability_diagram"]

_BLANK = "#eeeeee"  # cells without a value


def _ax(ax, figsize):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _nothing_to_show(ax, **labels):
    """An empty plot that says so; drawing no data would only raise matplotlib's warnings."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, "nothing to show", ha="center", va="center", transform=ax.transAxes, color="grey")
    return _label(ax, **labels)


def _label(ax, xlabel=None, ylabel=None, title=None, legend: bool = False):
    """Axis labels and title where given, and a legend for plots with one series per hue."""
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(loc="best", fontsize="small")
    return ax


def _colors(n: int):
    cycle = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    return [cycle[k % len(cycle)] for k in range(n)]


def interval_dots(df, y: str, value: str = "value", low: str = "low", high: str = "high",
                  hue: str | None = None, ax=None, xlabel: str | None = None, title: str | None = None,
                  xlim=None, order=None, hue_order=None, reference: float | None = None):
    """Horizontal dot-and-whisker plot: one row per ``y`` category, a dot at ``value`` and a
    line from ``low`` to ``high``; ``hue`` dodges several series per row. NaN intervals are
    drawn as a dot only; NaN values are skipped. ``reference`` draws a vertical line."""
    cats = list(order) if order is not None else list(dict.fromkeys(df[y].tolist()))
    hues = ([None] if hue is None else
            (list(hue_order) if hue_order is not None else list(dict.fromkeys(df[hue].tolist()))))
    ax = _ax(ax, (7, 0.35 * len(cats) * max(1, len(hues) ** 0.5) + 1.2))
    if not cats:  # e.g. no group passed a notebook's minimum size
        return _nothing_to_show(ax, xlabel=xlabel, title=title)
    pos = {c: k for k, c in enumerate(cats)}
    step = 0.8 / max(1, len(hues))
    for j, (h, color) in enumerate(zip(hues, _colors(len(hues)))):
        sub = df if h is None else df[df[hue] == h]
        sub = sub[sub[y].isin(pos) & sub[value].notna()]
        offset = (j - (len(hues) - 1) / 2) * step
        ys = np.array([pos[c] for c in sub[y]], dtype=float) + offset
        v = sub[value].to_numpy(float)
        lo = sub[low].to_numpy(float) if low in sub else np.full(len(v), np.nan)
        hi = sub[high].to_numpy(float) if high in sub else np.full(len(v), np.nan)
        ok = ~np.isnan(lo) & ~np.isnan(hi)
        ax.hlines(ys[ok], lo[ok], hi[ok], color=color, lw=2, alpha=0.8)
        ax.plot(v, ys, "o", color=color, label=None if h is None else str(h), clip_on=False, zorder=3)
    ax.set_yticks(range(len(cats)), [str(c) for c in cats])
    ax.set_ylim(len(cats) - 0.5, -0.5)
    if reference is not None:
        ax.axvline(reference, color="grey", lw=1, ls="--")
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.grid(axis="x", alpha=0.3)
    return _label(ax, xlabel=xlabel, title=title, legend=hue is not None)


def interval_lines(df, x: str, value: str = "value", low: str = "low", high: str = "high",
                   hue: str | None = None, ax=None, xlabel: str | None = None, ylabel: str | None = None,
                   title: str | None = None, hue_order=None):
    """Lines of ``value`` over ``x`` with a shaded ``low``-``high`` band, one per ``hue``."""
    ax = _ax(ax, (8, 4))
    hues = ([None] if hue is None else
            (list(hue_order) if hue_order is not None else list(dict.fromkeys(df[hue].tolist()))))
    for h, color in zip(hues, _colors(len(hues))):
        sub = (df if h is None else df[df[hue] == h]).sort_values(x)
        sub = sub[sub[value].notna()]
        xs = sub[x].to_numpy()
        ax.plot(xs, sub[value].to_numpy(float), "o-", color=color, label=None if h is None else str(h))
        ax.fill_between(xs, sub[low].to_numpy(float), sub[high].to_numpy(float), color=color, alpha=0.2,
                        lw=0)
    ax.grid(alpha=0.3)
    return _label(ax, xlabel=xlabel, ylabel=ylabel, title=title, legend=hue is not None)


def heatmap(data, ax=None, cmap: str = "RdBu", vmin: float | None = None, vmax: float | None = None,
            annotate: bool = True, fmt: str = "{:.2f}", labels=None, cbar_label: str | None = None,
            title: str | None = None, xlabel: str | None = None, ylabel: str | None = None):
    """A DataFrame (rows x columns) as a coloured grid; NaN cells are left blank (grey).

    ``labels``, a DataFrame or array of strings of the same shape, replaces the annotations
    (for example counts beside shares); otherwise each cell shows ``fmt.format(value)``.
    """
    import pandas as pd

    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(np.asarray(data))
    values = frame.to_numpy(dtype=float)
    ax = _ax(ax, (1.0 + 0.9 * values.shape[1], 0.8 + 0.4 * values.shape[0]))
    if not values.size:  # no rows or no columns (e.g. none passed a minimum count)
        return _nothing_to_show(ax, xlabel=xlabel, ylabel=ylabel, title=title)
    cm = plt.get_cmap(cmap).with_extremes(bad=_BLANK)
    finite = values[np.isfinite(values)]
    vmin = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    vmax = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    im = ax.imshow(np.ma.masked_invalid(values), cmap=cm, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(values.shape[1]), [str(c) for c in frame.columns], rotation=30, ha="right")
    ax.set_yticks(range(values.shape[0]), [str(i) for i in frame.index])
    if annotate:
        text = None if labels is None else np.asarray(labels, dtype=object)
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                v = values[i, j]
                s = text[i, j] if text is not None else ("" if not np.isfinite(v) else fmt.format(v))
                if s is None or s == "":
                    continue
                r, g, b, _ = im.cmap(im.norm(v)) if np.isfinite(v) else to_rgba(_BLANK)
                dark_cell = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                ax.text(j, i, s, ha="center", va="center", fontsize="small",
                        color="white" if dark_cell else "black")
    cbar = ax.figure.colorbar(im, ax=ax, shrink=0.8)
    if cbar_label:
        cbar.set_label(cbar_label)
    return _label(ax, xlabel=xlabel, ylabel=ylabel, title=title)


def confusion_matrix(cm, labels, ax=None, title: str | None = None, xlabel: str = "predicted",
                     ylabel: str = "gold"):
    """A confusion matrix (rows gold, columns predicted): colour is the share of the gold row,
    each cell shows its count."""
    import pandas as pd

    cm = np.asarray(cm, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = cm / cm.sum(axis=1, keepdims=True)
    frame = pd.DataFrame(share, index=list(labels), columns=list(labels))
    counts = np.vectorize(lambda c: f"{int(c)}")(cm)
    return heatmap(frame, ax=ax, cmap="Blues", vmin=0.0, vmax=1.0, labels=counts, cbar_label="share of gold row",
                   title=title, xlabel=xlabel, ylabel=ylabel)


def confusion_grid(matrices: dict, labels, ncols: int = 3, title: str | None = None):
    """One confusion matrix per entry of ``{name: matrix}`` on a grid; returns the Figure."""
    n = len(matrices)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.6 * nrows), layout="constrained",
                             squeeze=False)
    for ax, (name, cm) in zip(axes.ravel(), matrices.items()):
        confusion_matrix(cm, labels, ax=ax, title=str(name))
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


def pr_curve(y_true, scores, threshold: float | None = None, ax=None, label: str | None = None,
             title: str | None = None, color=None):
    """Precision-recall curve of ``scores`` against 0/1 ``y_true``, with average precision in
    the legend and, when ``threshold`` is given, the operating point of ``scores >= threshold``
    marked. The dashed line is the share of positives (a random scorer)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    y = np.asarray(y_true).astype(int).ravel()
    s = np.asarray(scores, dtype=float).ravel()
    ax = _ax(ax, (5, 4))
    if y.sum() == 0:
        ax.text(0.5, 0.5, "no positive in gold", ha="center", va="center", transform=ax.transAxes)
    else:
        precision, recall, _ = precision_recall_curve(y, s)
        ap = average_precision_score(y, s)
        name = f"{label + ': ' if label else ''}AP {ap:.2f}"
        (line,) = ax.plot(recall, precision, drawstyle="steps-post", label=name, color=color)
        ax.axhline(y.mean(), color=line.get_color(), lw=0.8, ls=":", alpha=0.7)
        if threshold is not None:
            pred = s >= threshold
            tp = float((pred & (y == 1)).sum())
            p_at = tp / pred.sum() if pred.sum() else 1.0
            r_at = tp / y.sum()
            ax.plot([r_at], [p_at], "o", ms=9, mfc="none", mew=2, color=line.get_color(),
                    label=f"threshold {threshold:.2f}: P {p_at:.2f}, R {r_at:.2f}")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def reliability_diagram(calib: dict, ax=None, label: str | None = None, title: str | None = None,
                        color=None):
    """A reliability diagram from ``stance.metrics.calibration``: mean outcome against mean
    probability per bin (marker area by the bin's count), the diagonal of perfect calibration,
    and the expected calibration error in the legend. Call again on the same ``ax`` to overlay."""
    ax = _ax(ax, (5, 5))
    count = np.asarray(calib["count"], dtype=float)
    filled = count > 0
    conf, acc = np.asarray(calib["confidence"])[filled], np.asarray(calib["accuracy"])[filled]
    sizes = 20 + 300 * count[filled] / max(count.max(), 1)
    name = f"{label + ': ' if label else ''}ECE {calib['ece']:.3f} (n={calib['n']})"
    (line,) = ax.plot(conf, acc, "-", color=color, alpha=0.8, label=name)
    ax.scatter(conf, acc, s=sizes, color=line.get_color(), alpha=0.6, edgecolor="white", zorder=3)
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed frequency")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    if title:
        ax.set_title(title)
    return ax
