"""The stance-headroom benchmark: its document features and a whole run on the tiny model."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

from conftest import synthetic_records, write_jsonl
from stance.data import Record

spec = importlib.util.spec_from_file_location(
    "stance_headroom", Path(__file__).resolve().parents[1] / "benchmarks" / "stance_headroom.py")
headroom = importlib.util.module_from_spec(spec)
spec.loader.exec_module(headroom)


def test_document_features_read_only_the_other_paragraphs_of_the_same_document(codebook):
    records = [Record(id=f"p{i}", doc_id=d, text="x", stance={}, frames=[])
               for i, d in enumerate(["a", "a", "b"])]
    n_actors, n_values = len(codebook.actor_ids), len(codebook.value_ids)
    favor, against = codebook.value_ids.index("favor"), codebook.value_ids.index("against")
    own = np.full((3, n_actors, n_values), 1.0 / n_values)
    others = np.zeros((3, n_actors, n_values))
    others[0, :, favor] = 1.0  # what p0 says; only p1 may see it
    others[1, :, against] = 1.0
    others[2, :, favor] = 1.0  # alone in its document: seen by nobody
    x = headroom.document_features(codebook, records, own, others)
    assert x.shape == (3, n_actors, n_values + n_values + 2 + n_actors)
    doc = x[..., n_values:2 * n_values]
    assert (doc[0, :, against] > doc[0, :, favor]).all()  # p0 sees p1 (against), not itself
    assert (doc[1, :, favor] > doc[1, :, against]).all()
    assert (x[2, :, n_values:2 * n_values + 2] == 0).all()  # no other paragraph: no document part
    assert np.allclose(x[..., :n_values], np.log(own + 1e-4))
    assert (x[..., -n_actors:] == np.eye(n_actors)).all()  # the actor, one-hot
    alone = headroom.document_features(codebook, records, own, None)
    assert alone.shape == (3, n_actors, n_values + n_actors)


def test_a_run_scores_each_model_and_their_ensemble(tiny_model, tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_jsonl(corpus / "dev.jsonl", synthetic_records(32, seed=3, prefix="v"))
    write_jsonl(corpus / "test.jsonl", synthetic_records(24, seed=4, prefix="w"))
    out = tmp_path / "headroom.json"
    monkeypatch.setattr(sys, "argv", ["stance_headroom.py", "--model", str(tiny_model), "--model", str(tiny_model),
                                      "--corpus", str(corpus), "--out", str(out)])
    headroom.main()
    result = json.loads(out.read_text())
    entry = result["models"][str(tiny_model)]
    for split in ("dev", "test"):
        figures = entry[split]
        assert 0.0 <= figures["encoder only"]["stance_macro_f1"] <= 1.0
        table = figures["gold rows, predicted columns"]
        assert sum(map(sum, table)) == (32 if split == "dev" else 24) * 5
    assert set(entry["document context (fitted on dev, scored on test)"]) == {
        "own probabilities only", "+ model's reading of the other paragraphs",
        "+ gold labels of the other paragraphs (upper bound)"}
    # the same model twice: the ensemble is that model
    mixed = [k for k in entry["test"] if k.startswith("mixed")][0]
    assert result["ensemble"]["test"] == entry["test"][mixed]
    assert "mean of 2 models" in capsys.readouterr().out
