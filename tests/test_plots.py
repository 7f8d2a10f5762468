"""stance.plots draws from plain arrays and DataFrames without a display (Agg)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from stance import plots  # noqa: E402
from stance.metrics import calibration  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _png(fig, tmp_path):
    path = tmp_path / "f.png"
    fig.savefig(path)
    assert path.stat().st_size > 1000


def test_interval_dots_and_lines(tmp_path):
    df = pd.DataFrame({"cat": ["a", "b", "a", "b"], "system": ["m", "m", "n", "n"],
                       "value": [0.5, 0.7, 0.2, np.nan], "low": [0.4, np.nan, 0.1, np.nan],
                       "high": [0.6, np.nan, 0.3, np.nan]})
    ax = plots.interval_dots(df, y="cat", hue="system", xlim=(0, 1), title="t", reference=0.5)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert len(ax.get_legend().get_texts()) == 2
    _png(ax.figure, tmp_path)
    years = pd.DataFrame({"year": [2020, 2021, 2020, 2021], "frame": ["x", "x", "y", "y"],
                          "value": [0.1, 0.2, 0.3, 0.4], "low": [0.0, 0.1, 0.2, 0.3], "high": [0.2, 0.3, 0.4, 0.5]})
    ax = plots.interval_lines(years, x="year", hue="frame", ylabel="share")
    assert len(ax.get_lines()) == 2
    _png(ax.figure, tmp_path)


def test_empty_plots_say_so_without_a_warning(tmp_path):
    import warnings

    empty = pd.DataFrame({"cat": [], "system": [], "value": [], "low": [], "high": []})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns on identical limits; a notebook shows it
        ax = plots.interval_dots(empty, y="cat", hue="system", title="t")
        grid = plots.heatmap(pd.DataFrame(index=["a", "b"], columns=[]), title="t")
    assert [t.get_text() for t in ax.texts] == ["nothing to show"]
    assert [t.get_text() for t in grid.texts] == ["nothing to show"]
    _png(ax.figure, tmp_path)


def test_heatmap_and_confusion(tmp_path):
    data = pd.DataFrame([[0.5, np.nan], [-0.2, 1.0]], index=["r1", "r2"], columns=["c1", "c2"])
    ax = plots.heatmap(data, vmin=-1, vmax=1, cbar_label="net")
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["0.50", "-0.20", "1.00"]  # NaN cell left blank
    _png(ax.figure, tmp_path)
    cm = np.array([[5, 1, 0], [0, 0, 0], [2, 0, 3]])
    ax = plots.confusion_matrix(cm, ["none", "favor", "against"], title="a")
    assert [t.get_text() for t in ax.texts] == [str(v) for v in cm.ravel()]
    fig = plots.confusion_grid({"a": cm, "b": cm, "c": cm, "d": cm}, ["none", "favor", "against"], ncols=3)
    assert sum(ax.get_visible() for ax in fig.axes if ax.get_title()) == 4
    _png(fig, tmp_path)


def test_pr_curve_marks_the_threshold(tmp_path):
    y = np.array([1, 1, 0, 0, 1, 0])
    s = np.array([0.9, 0.6, 0.55, 0.2, 0.4, 0.1])
    ax = plots.pr_curve(y, s, threshold=0.5, label="frame")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0].startswith("frame: AP")
    assert legend[1] == "threshold 0.50: P 0.67, R 0.67"  # 2 of 3 predicted are right, 2 of 3 found
    _png(ax.figure, tmp_path)
    ax = plots.pr_curve(np.zeros(3), [0.1, 0.2, 0.3], threshold=0.5)  # no positive: a note, no crash
    assert ax.texts


def test_reliability_diagram(tmp_path):
    rng = np.random.default_rng(0)
    p = rng.uniform(size=500)
    calib = calibration(p, rng.uniform(size=500) < p, 10)
    ax = plots.reliability_diagram(calib, label="stance")
    plots.reliability_diagram(calibration(p, p > 0.5, 10), ax=ax, label="frames")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == f"stance: ECE {calib['ece']:.3f} (n=500)" and len(legend) == 2
    _png(ax.figure, tmp_path)
