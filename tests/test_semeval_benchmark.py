"""Smoke test of benchmarks/semeval2016.py on a few dozen tweets, when the shared data is present.

The data is research-only and never copied into the project; the test reads it from
``../shared/datasets/semeval2016_task6/processed/`` and is skipped where that folder is absent.
"""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _benchmark():
    spec = importlib.util.spec_from_file_location("semeval2016", ROOT / "benchmarks" / "semeval2016.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _benchmark()
HAVE_DATA = (bench.DEFAULT_DATA / "train_taskA.csv").exists()


def test_absent_data_is_a_clean_skip(tmp_path, capsys):
    assert bench.main(["--data", str(tmp_path), "--results", str(tmp_path / "r.md")]) == 0
    assert "SemEval-2016 data not available" in capsys.readouterr().out
    assert not (tmp_path / "r.md").exists()


@pytest.mark.skipif(not HAVE_DATA, reason="SemEval-2016 data not in ../shared/datasets")
def test_benchmark_runs_end_to_end_on_a_few_dozen_rows(tmp_path):
    results = tmp_path / "semeval.md"
    assert bench.main(["--seeds", "3", "--limit", "40", "--tiny", "--results", str(results)]) == 0
    text = results.read_text()
    assert "| Majority class (Mohammad et al. 2016) | 65.22 | 29.72 |" in text
    assert "this project: TF-IDF + logistic regression baseline" in text
    data = json.loads(results.with_suffix(".json").read_text())
    run = data["runs"][0]
    assert run["seed"] == 3
    assert set(run["A"]["per_target"]) == set(bench.TASK_A)  # every Task A target scored
    assert set(run["B"]["per_target"]) == {"trump"}  # Task B scores Trump only
    for task in ("A", "B"):
        assert 0.0 <= run[task]["f_avg"] <= 100.0
        assert run[task]["low"] <= run[task]["f_avg"] <= run[task]["high"]
    assert data["n"]["train"] + data["n"]["dev"] == 40 and data["n"]["dev"] >= 5


@pytest.mark.skipif(not HAVE_DATA, reason="SemEval-2016 data not in ../shared/datasets")
def test_records_follow_the_official_data():
    """Each tweet annotates its own target only, #SemST removed, the official label kept."""
    rows = bench.read_split(bench.DEFAULT_DATA, "test_b")
    assert len(rows) == 707
    assert all(set(r["stance"]) == {"trump"} and "#SemST" not in r["text"] for r in rows)
    counts = {v: sum(r["stance"]["trump"] == v for r in rows) for v in ("favor", "against", "none")}
    assert counts == {"favor": 148, "against": 299, "none": 260}  # as in PROVENANCE.md
    train, dev = bench.hold_out(bench.read_split(bench.DEFAULT_DATA, "train"))
    assert len(train) + len(dev) == 2914 and not {r["id"] for r in train} & {r["id"] for r in dev}
