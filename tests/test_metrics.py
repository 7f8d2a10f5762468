"""Tests for stance.metrics: hand-computed scores, the bootstrap, and agreement measures."""
from __future__ import annotations

import random
import time

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score

from stance.codebook import Codebook
from stance.data import Record
from stance.errors import StanceError
from stance.metrics import (agreement, cohen_kappa, disagreements, format_table,
                            krippendorff_alpha, score)


def make_codebook(actors=("a", "b"), frames=("x", "y"), values=("none", "favor", "against", "neutral"),
                  absent="none", annotation="complete") -> Codebook:
    return Codebook.from_dict({
        "name": "test", "version": "0", "annotation": annotation,
        "stance_values": list(values), "absent_value": absent,
        "actors": [{"id": a} for a in actors],
        "frames": [{"id": f} for f in frames],
    })


def rec(rid, stance, frames=(), doc=None):
    out = {"id": rid, "stance": dict(stance), "frames": list(frames)}
    if doc is not None:
        out["doc_id"] = doc
    return out


# -- frames -------------------------------------------------------------------------------------
FRAME_CASE = [  # (gold frames, predicted frames)
    (["x"], ["x"]),
    (["x", "y"], ["x"]),
    ([], ["y"]),
    (["y"], ["y"]),
    (["x"], []),
]


def frame_records(cb, case, extra_pred=None):
    st = {a: "none" for a in cb.actor_ids}
    gold = [rec(f"p{i}", st, g) for i, (g, _) in enumerate(case)]
    pred = [rec(f"p{i}", st, p) for i, (_, p) in enumerate(case)]
    if extra_pred:
        for i, fr in extra_pred.items():
            pred[i]["frames"] = pred[i]["frames"] + fr
    return gold, pred


def test_frame_f1_macro_micro_hand_computed():
    cb = make_codebook()
    gold, pred = frame_records(cb, FRAME_CASE)
    r = score(gold, pred, cb, n_boot=50)
    x, y = r["frames"]["x"], r["frames"]["y"]
    # x: tp 2, fp 0, fn 1; y: tp 1, fp 1, fn 1
    assert x["precision"]["value"] == pytest.approx(1.0)
    assert x["recall"]["value"] == pytest.approx(2 / 3)
    assert x["f1"]["value"] == pytest.approx(0.8)
    assert x["support"] == 3
    assert y["precision"]["value"] == pytest.approx(0.5)
    assert y["recall"]["value"] == pytest.approx(0.5)
    assert y["f1"]["value"] == pytest.approx(0.5)
    assert y["support"] == 2
    assert r["frames_macro_f1"]["value"] == pytest.approx(0.65)
    assert r["frames_micro_f1"]["value"] == pytest.approx(2 / 3)  # tp 3, fp 1, fn 2
    # the same as scikit-learn on indicator matrices
    g = np.array([[f in gf for f in "xy"] for gf, _ in FRAME_CASE])
    p = np.array([[f in pf for f in "xy"] for _, pf in FRAME_CASE])
    assert r["frames_macro_f1"]["value"] == pytest.approx(f1_score(g, p, average="macro"))
    assert r["frames_micro_f1"]["value"] == pytest.approx(f1_score(g, p, average="micro"))
    assert r["n_paragraphs"] == 5 and r["n_documents"] == 5


def test_frame_without_gold_support_is_left_out_of_macro_but_counts_in_micro():
    cb = make_codebook(frames=("x", "y", "z"))
    gold, pred = frame_records(cb, FRAME_CASE, extra_pred={0: ["z"]})
    r = score(gold, pred, cb, n_boot=20)
    assert r["frames"]["z"]["f1"]["value"] == 0.0
    assert r["frames"]["z"]["support"] == 0
    assert r["frames_macro_f1"]["value"] == pytest.approx(0.65)
    assert r["frames_micro_f1"]["value"] == pytest.approx(6 / 10)  # tp 3, fp 2, fn 2


def test_empty_frame_list():
    cb = make_codebook(frames=())
    gold = [rec("1", {"a": "favor", "b": "none"})]
    r = score(gold, gold, cb, n_boot=10)
    assert r["frames"] == {}
    assert r["frames_macro_f1"]["value"] is None
    assert r["stance"]["a"]["macro_f1"]["value"] == 1.0
    assert "frames" not in format_table(r).splitlines()


# -- stance and reference -----------------------------------------------------------------------
STANCE_A = [  # (gold, pred) for actor a
    ("favor", "favor"),
    ("favor", "against"),
    ("against", "against"),
    ("against", "none"),     # predicted absent on a referenced paragraph: a wrong label
    ("neutral", "neutral"),
    ("none", "favor"),       # not referenced in gold: outside stance, a false reference
    ("none", "none"),
]
STANCE_B = [("neutral", "neutral"), ("none", "neutral")] + [("none", "none")] * 5


def stance_records():
    gold = [rec(f"p{i}", {"a": ga, "b": gb}) for i, ((ga, _), (gb, _)) in
            enumerate(zip(STANCE_A, STANCE_B))]
    pred = [rec(f"p{i}", {"a": pa, "b": pb}) for i, ((_, pa), (_, pb)) in
            enumerate(zip(STANCE_A, STANCE_B))]
    return gold, pred


def test_stance_macro_f1_on_referenced_paragraphs_and_f_avg():
    cb = make_codebook()
    gold, pred = stance_records()
    r = score(gold, pred, cb, n_boot=50)
    a = r["stance"]["a"]
    assert a["n"] == 5
    assert a["per_value_f1"] == pytest.approx({"favor": 2 / 3, "against": 0.5, "neutral": 1.0})
    assert a["macro_f1"]["value"] == pytest.approx(13 / 18)
    assert a["f_avg"]["value"] == pytest.approx(7 / 12)
    ref_rows = [(g, p) for g, p in STANCE_A if g != "none"]
    sk = f1_score([g for g, _ in ref_rows], [p for _, p in ref_rows],
                  labels=["favor", "against", "neutral"], average="macro")
    assert a["macro_f1"]["value"] == pytest.approx(sk)
    # actor b: only neutral has gold support, so macro-F1 is F1(neutral) = 1
    b = r["stance"]["b"]
    assert b["n"] == 1
    assert b["macro_f1"]["value"] == pytest.approx(1.0)
    assert b["f_avg"]["value"] == pytest.approx(0.0)  # SemEval definition: both always averaged
    assert r["stance_macro_f1"]["value"] == pytest.approx((13 / 18 + 1.0) / 2)
    assert r["stance_f_avg"]["value"] == pytest.approx((7 / 12 + 0.0) / 2)


def test_reference_detection_f1():
    cb = make_codebook()
    gold, pred = stance_records()
    r = score(gold, pred, cb, n_boot=50)
    assert r["reference"]["a"]["f1"]["value"] == pytest.approx(0.8)    # tp 4, fp 1, fn 1
    assert r["reference"]["b"]["f1"]["value"] == pytest.approx(2 / 3)  # tp 1, fp 1, fn 0
    assert r["reference_f1"]["value"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert r["reference_micro_f1"]["value"] == pytest.approx(10 / 13)  # tp 5, fp 2, fn 1


def test_records_and_dicts_give_the_same_result():
    cb = make_codebook()
    gold, pred = stance_records()
    as_records = [Record(id=g["id"], doc_id=g["id"], text="t", stance=g["stance"], frames=g["frames"])
                  for g in gold]
    assert score(as_records, pred, cb, n_boot=30, seed=3) == score(gold, pred, cb, n_boot=30, seed=3)


def test_semeval_codebook_without_absent_value_and_pooled_f_avg():
    cb = make_codebook(actors=("t1", "t2"), frames=(), values=("favor", "against", "none"), absent=None)
    t1 = [("favor", "favor"), ("favor", "none"), ("against", "against"), ("none", "against")]
    t2 = [("against", "against"), ("none", "none"), ("favor", "against"), ("against", "against")]
    gold = [rec(str(i), {"t1": a[0], "t2": b[0]}) for i, (a, b) in enumerate(zip(t1, t2))]
    pred = [rec(str(i), {"t1": a[1], "t2": b[1]}) for i, (a, b) in enumerate(zip(t1, t2))]
    r = score(gold, pred, cb, n_boot=50)
    s1, s2 = r["stance"]["t1"], r["stance"]["t2"]
    assert s1["n"] == 4 and s2["n"] == 4
    assert s1["per_value_f1"] == pytest.approx({"favor": 2 / 3, "against": 2 / 3, "none": 0.0})
    assert s1["macro_f1"]["value"] == pytest.approx(4 / 9)
    assert s1["f_avg"]["value"] == pytest.approx(2 / 3)
    assert s2["macro_f1"]["value"] == pytest.approx(0.6)
    assert s2["f_avg"]["value"] == pytest.approx(0.4)
    assert r["stance_macro_f1"]["value"] == pytest.approx(47 / 90)
    assert r["stance_f_avg"]["value"] == pytest.approx(8 / 15)
    # pooled: favor tp 1, fp 0, fn 2 -> 2/4; against tp 3, fp 2, fn 0 -> 6/8; not the mean 8/15
    assert r["stance_pooled_f_avg"]["value"] == pytest.approx(0.625)
    g_all = [g for g, _ in t1 + t2]
    p_all = [p for _, p in t1 + t2]
    assert r["stance_pooled_f_avg"]["value"] == pytest.approx(
        f1_score(g_all, p_all, labels=["favor", "against"], average="macro"))
    assert r["reference"] == {} and r["reference_f1"] is None and r["reference_micro_f1"] is None


def test_partial_annotation_scores_only_the_annotated_actors():
    """SemEval-style data: each text annotates one target; the others are left out of every figure."""
    cb = make_codebook(actors=("t1", "t2"), frames=(), values=("favor", "against", "none"), absent=None,
                       annotation="partial")
    t1 = [("favor", "favor"), ("favor", "none"), ("against", "against"), ("none", "against")]
    t2 = [("against", "against"), ("none", "none"), ("favor", "against"), ("against", "against")]
    # the same figures as the complete test above, with rows added whose other target is absent
    # from gold and predicted wildly: they must change nothing
    gold = [rec(f"a{i}", {"t1": g}) for i, (g, _) in enumerate(t1)] + \
           [rec(f"b{i}", {"t2": g}) for i, (g, _) in enumerate(t2)]
    pred = [rec(f"a{i}", {"t1": p, "t2": "favor"}) for i, (_, p) in enumerate(t1)] + \
           [rec(f"b{i}", {"t1": "favor", "t2": p}) for i, (_, p) in enumerate(t2)]
    r = score(gold, pred, cb, n_boot=50)
    assert r["stance"]["t1"]["n"] == 4 and r["stance"]["t2"]["n"] == 4
    assert r["stance"]["t1"]["f_avg"]["value"] == pytest.approx(2 / 3)
    assert r["stance"]["t2"]["f_avg"]["value"] == pytest.approx(0.4)
    assert r["stance_pooled_f_avg"]["value"] == pytest.approx(0.625)
    # a complete codebook refuses the same gold: a value is missing
    with pytest.raises(StanceError, match="has no value"):
        score(gold, pred, make_codebook(actors=("t1", "t2"), frames=(), values=("favor", "against", "none"),
                                        absent=None), n_boot=0)
    # predictions must still give every actor
    with pytest.raises(StanceError, match="prediction"):
        score(gold, [rec(p["id"], {"t1": "favor"}) for p in pred], cb, n_boot=0)


def test_partial_annotation_with_an_absent_value_masks_reference_detection():
    cb = make_codebook(annotation="partial")
    gold = [rec("1", {"a": "favor"}), rec("2", {"a": "none"}), rec("3", {"b": "neutral"})]
    pred = [rec("1", {"a": "favor", "b": "favor"}), rec("2", {"a": "none", "b": "against"}),
            rec("3", {"a": "favor", "b": "neutral"})]
    r = score(gold, pred, cb, n_boot=0)
    # b's false reference in 1 and 2 and a's in 3 are on unannotated pairs: perfect detection
    assert r["reference"]["a"]["f1"]["value"] == 1.0 and r["reference"]["b"]["f1"]["value"] == 1.0


def test_missing_prediction_raises_and_extra_predictions_are_ignored():
    cb = make_codebook()
    gold, pred = stance_records()
    with pytest.raises(StanceError, match="p3"):
        score(gold, pred[:3] + pred[4:], cb, n_boot=10)
    extra = pred + [rec("zzz", {"a": "favor", "b": "favor"}, ["x"])]
    assert score(gold, extra, cb, n_boot=10) == score(gold, pred, cb, n_boot=10)
    bad = [dict(p, stance={"a": "maybe", "b": "none"}) if p["id"] == "p0" else p for p in pred]
    with pytest.raises(StanceError, match="maybe"):
        score(gold, bad, cb, n_boot=10)


# -- bootstrap ----------------------------------------------------------------------------------
def synthetic(n_docs=80, per_doc=5, actors=("a1", "a2", "a3", "a4", "a5"),
              frames=("f1", "f2", "f3"), seed=1, noise=0.25):
    rnd = random.Random(seed)
    values = ["none", "favor", "against", "neutral"]
    gold, pred = [], []
    for d in range(n_docs):
        for k in range(per_doc):
            rid = f"d{d}-p{k}"
            g_st = {a: rnd.choice(values) for a in actors}
            p_st = {a: (v if rnd.random() > noise else rnd.choice(values)) for a, v in g_st.items()}
            g_fr = [f for f in frames if rnd.random() < 0.3]
            p_fr = [f for f in frames if (f in g_fr) != (rnd.random() < noise)]
            gold.append(rec(rid, g_st, g_fr, doc=f"d{d}"))
            pred.append(rec(rid, p_st, p_fr, doc=f"d{d}"))
    return gold, pred


def all_figures(r):
    for f in r["frames"].values():
        yield from (f["f1"], f["precision"], f["recall"])
    yield r["frames_macro_f1"]
    yield r["frames_micro_f1"]
    for s in r["stance"].values():
        yield s["macro_f1"]
        yield s["f_avg"]
    yield from (r["stance_macro_f1"], r["stance_f_avg"], r["stance_pooled_f_avg"])
    for s in r["reference"].values():
        yield s["f1"]
    yield from (r["reference_f1"], r["reference_micro_f1"])


def test_bootstrap_intervals_contain_estimate_deterministic_and_fast():
    cb = make_codebook(actors=("a1", "a2", "a3", "a4", "a5"), frames=("f1", "f2", "f3"))
    gold, pred = synthetic()
    assert len(gold) == 400
    start = time.perf_counter()
    r1 = score(gold, pred, cb, n_boot=1000, seed=7)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0
    figures = list(all_figures(r1))
    assert len(figures) == 3 * 3 + 2 + 5 * 2 + 3 + 5 + 2
    for f in figures:
        assert f["low"] <= f["value"] <= f["high"]
        assert f["low"] < f["high"]            # a real spread on 80 documents
        assert f["high"] - f["low"] < 0.5
    assert score(gold, pred, cb, n_boot=1000, seed=7) == r1
    r2 = score(gold, pred, cb, n_boot=1000, seed=8)
    assert r2["stance_macro_f1"]["value"] == r1["stance_macro_f1"]["value"]
    assert r2["stance_macro_f1"]["low"] != r1["stance_macro_f1"]["low"]
    # a wider ci gives a wider interval
    r3 = score(gold, pred, cb, n_boot=1000, seed=7, ci=0.5)
    assert r3["frames_macro_f1"]["low"] > r1["frames_macro_f1"]["low"]
    assert r3["frames_macro_f1"]["high"] < r1["frames_macro_f1"]["high"]


def test_bootstrap_resamples_whole_documents():
    # Document A: ten paragraphs with frame x found; document B: ten with frame x missed.
    # Resampling documents gives only AA, AB/BA, BB, so recall is 1, 0.5 or 0 in a replicate
    # and the 95% interval is [0, 1]; resampling paragraphs would give a narrow interval.
    cb = make_codebook(actors=("a",), frames=("x",))
    st = {"a": "none"}
    gold = [rec(f"A{i}", st, ["x"], doc="A") for i in range(10)] + \
           [rec(f"B{i}", st, ["x"], doc="B") for i in range(10)]
    pred = [rec(f"A{i}", st, ["x"], doc="A") for i in range(10)] + \
           [rec(f"B{i}", st, [], doc="B") for i in range(10)]
    r = score(gold, pred, cb, n_boot=2000, seed=0)
    assert r["n_documents"] == 2
    recall = r["frames"]["x"]["recall"]
    assert recall["value"] == pytest.approx(0.5)
    assert (recall["low"], recall["high"]) == (0.0, 1.0)
    narrow = score(gold, pred, cb, n_boot=2000, seed=0, ci=0.2)["frames"]["x"]["recall"]
    assert (narrow["low"], narrow["high"]) == (0.5, 0.5)  # 40th-60th percentile: AB or BA
    # without doc_id every paragraph is its own document: a narrower interval inside (0, 1)
    for g in gold + pred:
        del g["doc_id"]
    r = score(gold, pred, cb, n_boot=2000, seed=0)
    assert r["n_documents"] == 20
    recall = r["frames"]["x"]["recall"]
    assert 0.0 < recall["low"] < 0.5 < recall["high"] < 1.0


def test_format_table():
    cb = make_codebook()
    gold, pred = frame_records(cb, FRAME_CASE)
    text = format_table(score(gold, pred, cb, n_boot=100), title="dev set")
    lines = text.splitlines()
    assert lines[0] == "dev set"
    macro = next(line for line in lines if "frames macro-F1" in line)
    assert "0.650" in macro and "[" in macro
    order = [next(i for i, line in enumerate(lines) if line == h)
             for h in ("frames", "stance", "reference detection")]
    assert order == sorted(order)
    assert any(line.strip().startswith("x F1") and "0.800" in line for line in lines)


# -- agreement ----------------------------------------------------------------------------------
N = None
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: four observers,
# twelve units, values 1-5, missing data.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],  # A
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],  # B
    [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],  # C
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],  # D
]


def test_krippendorff_alpha_published_example():
    units_by_coders = [list(u) for u in zip(*KRIPPENDORFF_2011)]
    assert round(krippendorff_alpha(units_by_coders), 3) == 0.743
    assert round(krippendorff_alpha(units_by_coders, "ordinal"), 3) == 0.815
    assert round(krippendorff_alpha(units_by_coders, "interval"), 3) == 0.849
    assert round(krippendorff_alpha(units_by_coders, "ratio"), 3) == 0.797
    # NaN works as a missing value too, in a 2-D float array
    arr = np.array([[np.nan if v is None else v for v in u] for u in units_by_coders], dtype=float)
    assert round(krippendorff_alpha(arr), 3) == 0.743


def test_krippendorff_alpha_hand_computed():
    # units (a,a) (a,b) (b,b) (b,b): n_a = 3, n_b = 5, n = 8, o_ab + o_ba = 2
    # alpha = 1 - (n - 1) * 2 / (2 * n_a * n_b) = 1 - 14 / 30
    data = [["a", "a"], ["a", "b"], ["b", "b"], ["b", "b"], ["a", None]]
    assert krippendorff_alpha(data) == pytest.approx(16 / 30)
    assert krippendorff_alpha([["a", "a"], ["b", "b"]]) == pytest.approx(1.0)
    assert np.isnan(krippendorff_alpha([["a", "a"], ["a", "a"]]))


def test_cohen_kappa_matches_sklearn():
    rnd = random.Random(5)
    labels = ["favor", "against", "neutral", "none"]
    a = [rnd.choice(labels) for _ in range(60)]
    b = [x if rnd.random() < 0.6 else rnd.choice(labels) for x in a]
    a[3] = None
    b[10] = None
    keep = [i for i in range(60) if a[i] is not None and b[i] is not None]
    expected = cohen_kappa_score([a[i] for i in keep], [b[i] for i in keep])
    assert 0.2 < expected < 0.9
    assert cohen_kappa(a, b) == pytest.approx(expected)
    assert cohen_kappa([1, 2, 1, 2], [1, 2, 2, 2]) == pytest.approx(0.5)


def two_passes():
    pass0 = [
        rec("1", {"a": "favor"}, ["x"], doc="d1"),
        rec("2", {"a": "against"}, [], doc="d1"),
        rec("3", {"a": "none"}, ["x"], doc="d2"),
        rec("4", {"a": "neutral"}, [], doc="d2"),
        rec("5", {"a": "favor"}, ["x"], doc="d3"),   # only in pass 0
    ]
    pass1 = [
        rec("1", {"a": "favor"}, ["x"], doc="d1"),
        rec("2", {"a": "against"}, [], doc="d1"),
        rec("3", {"a": "neutral"}, [], doc="d2"),
        rec("4", {"a": "neutral"}, [], doc="d2"),
        rec("6", {"a": "none"}, [], doc="d4"),       # only in pass 1
    ]
    return pass0, pass1


def test_agreement_on_two_tiny_passes():
    cb = make_codebook(actors=("a",), frames=("x",))
    pass0, pass1 = two_passes()
    r = agreement([pass0, pass1], cb, n_boot=500, seed=0)
    assert r["n"] == 4
    assert set(r["alpha"]) == {"frame:x", "stance:a", "reference:a"}
    # stance: values f f ag ag none neu neu neu, one disagreeing unit:
    # 1 - 7 * 2 / (64 - (4 + 4 + 1 + 9)) = 16 / 23
    assert r["alpha"]["stance:a"]["value"] == pytest.approx(16 / 23)
    assert r["alpha"]["frame:x"]["value"] == pytest.approx(8 / 15)
    assert r["alpha"]["reference:a"]["value"] == pytest.approx(0.0)
    # two documents: replicates d1d1 (perfect, alpha 1), d2d2 (alpha -1/6) or both (16/23)
    st = r["alpha"]["stance:a"]
    assert st["low"] == pytest.approx(-1 / 6) and st["high"] == pytest.approx(1.0)
    assert r["kappa"]["0-1"]["stance:a"] == pytest.approx(2 / 3)
    assert r["kappa"]["0-1"]["frame:x"] == pytest.approx(0.5)
    assert r["kappa"]["0-1"]["reference:a"] == pytest.approx(0.0)
    assert r["kappa"]["0-1"]["stance:a"] == pytest.approx(cohen_kappa_score(
        ["favor", "against", "none", "neutral"], ["favor", "against", "neutral", "neutral"]))


def test_agreement_three_coders_matches_krippendorff_alpha():
    cb = make_codebook(actors=("a",), frames=("x",))
    pass0, pass1 = two_passes()
    pass2 = [rec("1", {"a": "against"}, ["x"], doc="d1"), rec("3", {"a": "none"}, [], doc="d2"),
             rec("5", {"a": "favor"}, [], doc="d3")]
    r = agreement([pass0, pass1, pass2], cb, n_boot=100)
    assert r["n"] == 5  # ids 1-5: id 5 now has two coders, id 6 still one
    matrix = [["favor", "favor", "against"], ["against", "against", None],
              ["none", "neutral", "none"], ["neutral", "neutral", None], ["favor", None, "favor"]]
    assert r["alpha"]["stance:a"]["value"] == pytest.approx(krippendorff_alpha(matrix))
    assert set(r["kappa"]) == {"0-1", "0-2", "1-2"}


def test_disagreements():
    cb = make_codebook(actors=("a",), frames=("x",))
    pass0, pass1 = two_passes()
    assert disagreements([pass0, pass1], cb) == [
        {"id": "3", "doc_id": "d2", "field": "frame:x", "values": [True, False]},
        {"id": "3", "doc_id": "d2", "field": "stance:a", "values": ["none", "neutral"]},
    ]
