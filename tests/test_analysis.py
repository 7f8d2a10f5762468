"""Tests for stance.metrics.calibration and the tidy tables of stance.analysis."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stance.analysis import group_means, net_stance, tidy_scores
from stance.errors import StanceError
from stance.metrics import calibration, score

from test_metrics import make_codebook, rec


# -- calibration --------------------------------------------------------------------------------
def test_calibration_by_hand():
    probs = [0.05, 0.15, 0.15, 0.95, 1.0]
    correct = [0, 0, 1, 1, 1]
    c = calibration(probs, correct, n_bins=10)
    assert c["count"].tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert c["confidence"][1] == pytest.approx(0.15) and c["accuracy"][1] == pytest.approx(0.5)
    assert np.isnan(c["confidence"][2]) and np.isnan(c["accuracy"][2])
    assert c["confidence"][9] == pytest.approx(0.975) and c["accuracy"][9] == 1.0  # 1.0 is in the last bin
    expected = (1 * 0.05 + 2 * 0.35 + 2 * 0.025) / 5
    assert c["ece"] == pytest.approx(expected)
    assert c["mce"] == pytest.approx(0.35)
    assert c["n"] == 5 and len(c["edges"]) == 11


def test_calibration_perfect_and_worst():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=20000)
    y = rng.uniform(size=20000) < p  # outcomes drawn with the stated probability
    assert calibration(p, y, 10)["ece"] < 0.02
    assert calibration([1.0, 1.0, 0.0], [0, 0, 1], 5)["ece"] == pytest.approx(1.0)


def test_calibration_flattens_and_checks():
    c = calibration(np.array([[0.2, 0.8], [0.6, 0.4]]), np.array([[0, 1], [1, 0]]), n_bins=2)
    assert c["n"] == 4 and c["count"].tolist() == [2, 2]
    for probs, correct, bins in (([0.5], [1, 0], 10), ([], [], 10), ([1.2], [1], 10), ([0.5], [2], 10),
                                 ([0.5], [1], 0), ([np.nan], [1], 10)):
        with pytest.raises(StanceError):
            calibration(probs, correct, bins)


# -- group_means --------------------------------------------------------------------------------
def _paragraphs():
    return pd.DataFrame({
        "doc_id": ["d1", "d1", "d2", "d3", "d3", "d3", "d4"],
        "outlet": ["A", "A", "A", "B", "B", "B", "B"],
        "x": [1, 0, 1, 0, 0, 1, 1],
        "y": [1.0, np.nan, -1.0, np.nan, np.nan, np.nan, 0.0],
    })


def test_group_means_values_counts_and_intervals():
    df = _paragraphs()
    t = group_means(df, ["x", "y"], by="outlet", n_boot=500, seed=1)
    assert list(t.columns) == ["outlet", "column", "value", "low", "high", "n", "n_docs"]
    row = t.set_index(["outlet", "column"])
    assert row.loc[("A", "x"), "value"] == pytest.approx(2 / 3)
    assert row.loc[("B", "x"), "value"] == pytest.approx(2 / 4)
    assert row.loc[("A", "y"), "value"] == pytest.approx(0.0)  # mean of 1 and -1; NaN rows left out
    assert row.loc[("A", "y"), "n"] == 2 and row.loc[("A", "y"), "n_docs"] == 2
    assert row.loc[("B", "y"), "n"] == 1 and row.loc[("B", "y"), "n_docs"] == 1
    assert row.loc[("A", "x"), "n_docs"] == 2 and row.loc[("B", "x"), "n"] == 4
    ok = t.dropna(subset=["low"])
    assert ((ok.low <= ok.value + 1e-12) & (ok.value <= ok.high + 1e-12)).all()
    # resampling whole documents: outlet A's x is 1/2 or 1 per document, so replicates stay within
    assert row.loc[("A", "x"), "low"] >= 0.5 - 1e-12 and row.loc[("A", "x"), "high"] <= 1.0


def test_group_means_whole_table_and_no_bootstrap():
    t = group_means(_paragraphs(), "x", n_boot=0)
    assert list(t.columns) == ["column", "value", "low", "high", "n", "n_docs"]
    assert t.loc[0, "value"] == pytest.approx(4 / 7) and np.isnan(t.loc[0, "low"])
    assert t.loc[0, "n_docs"] == 4


def test_group_means_same_seed_same_interval_and_errors():
    df = _paragraphs()
    a = group_means(df, "x", by="outlet", n_boot=200, seed=3)
    b = group_means(df, "x", by="outlet", n_boot=200, seed=3)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(StanceError, match="no column"):
        group_means(df, "missing")
    with pytest.raises(StanceError, match="numeric"):
        group_means(df.assign(s=["a"] * len(df)), "s")


def test_group_means_all_missing_column():
    df = _paragraphs().assign(z=np.nan)
    t = group_means(df, "z", by="outlet", n_boot=50)
    assert t["value"].isna().all() and (t["n"] == 0).all() and (t["n_docs"] == 0).all()


def test_net_stance():
    s = pd.Series(["favor", "against", "neutral", "none"])
    out = net_stance(s)
    assert out.tolist()[:3] == [1.0, -1.0, 0.0] and np.isnan(out.iloc[3])
    assert np.isnan(net_stance(["none", "favor"])[0]) and net_stance(["none", "favor"])[1] == 1.0


# -- tidy_scores --------------------------------------------------------------------------------
def test_tidy_scores_matches_score():
    cb = make_codebook()
    gold = [rec("1", {"a": "favor", "b": "none"}, ["x"], doc="d1"), rec("2", {"a": "against", "b": "neutral"}, [], doc="d2"),
            rec("3", {"a": "none", "b": "favor"}, ["y"], doc="d3")]
    pred = [rec("1", {"a": "favor", "b": "none"}, ["x"]), rec("2", {"a": "favor", "b": "neutral"}, ["x"]),
            rec("3", {"a": "none", "b": "none"}, ["y"])]
    s = score(gold, pred, cb, n_boot=20)
    t = tidy_scores({"m": s, "n": s})
    assert set(t.system) == {"m", "n"}
    one = t[t.system == "m"].set_index("figure")
    assert one.loc["frames macro-F1", "value"] == pytest.approx(s["frames_macro_f1"]["value"])
    assert one.loc["x F1", "value"] == pytest.approx(s["frames"]["x"]["f1"]["value"])
    assert one.loc["x F1", "support"] == s["frames"]["x"]["support"]
    assert one.loc["a macro-F1", "value"] == pytest.approx(s["stance"]["a"]["macro_f1"]["value"])
    assert one.loc["b reference F1", "value"] == pytest.approx(s["reference"]["b"]["f1"]["value"])
    assert set(t.kind) == {"headline", "frame", "stance", "reference"}
