"""The learning-curve benchmark's document sampling (the training it runs is the tested recipe)."""
import importlib.util
from pathlib import Path

from conftest import synthetic_records
from stance.data import Record

spec = importlib.util.spec_from_file_location(
    "learning_curve", Path(__file__).resolve().parents[1] / "benchmarks" / "learning_curve.py")
learning_curve = importlib.util.module_from_spec(spec)
spec.loader.exec_module(learning_curve)


def _records():
    return [Record(**r) for r in synthetic_records(120, seed=5)]


def test_subsample_takes_whole_documents_up_to_the_fraction_and_is_seeded():
    records = _records()
    docs = {}
    for r in records:
        docs.setdefault(r.doc_id, []).append(r)
    assert len(docs) > 10
    half = learning_curve.subsample(records, 0.5, seed=1)
    chosen = {r.doc_id for r in half}
    assert all(len([r for r in half if r.doc_id == d]) == len(docs[d]) for d in chosen)  # whole documents
    biggest = max(len(v) for v in docs.values())
    assert 0.5 * len(records) <= len(half) < 0.5 * len(records) + biggest
    assert [r.id for r in half] == [r.id for r in learning_curve.subsample(records, 0.5, seed=1)]
    assert chosen != {r.doc_id for r in learning_curve.subsample(records, 0.5, seed=2)}
    assert len(learning_curve.subsample(records, 1.0, seed=1)) == len(records)
