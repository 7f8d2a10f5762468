"""`stance label --engine ray` and `stance.distributed.label_dataset` on a local 2-CPU Ray cluster.

Equal to the local engine means: the same rows in the same order with the same columns and values,
the same stance and frame decisions, `windows` and `english`, and probabilities within 1e-4 (the
step they are rounded to).
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, synthetic_records
from stance import distributed
from stance.cli import main
from stance.labeling import run_label

try:
    import ray
except ImportError:  # the tests that need no Ray still run: the install hint, the import boundary
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed (an optional extra: pip install '.[ray]')")

QUIET = dict(progress=False, log=lambda m: None)
# ONNX workers start in a second or two where torch ones take several; the torch path is
# checked once, in the first equality test
FAST = dict(backend="onnx", **QUIET)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A table with carried columns and bad rows, and a folder of articles with boilerplate."""
    d = tmp_path_factory.mktemp("corpus")
    rows = [{"id": f"r{i}", "text": r["text"], "outlet": f"outlet{i % 3}", "year": 2020 + i % 4}
            for i, r in enumerate(synthetic_records(300, seed=11))]
    rows[17]["text"] = "   "
    rows[230]["text"] = None
    (d / "table.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    articles = d / "articles"
    articles.mkdir()
    for k in range(3):
        paras = [r["text"] for r in synthetic_records(8, seed=20 + k)]
        (articles / f"a{k}.txt").write_text(f"Headline number {k}\n\nBy Jane Roe\n\n" + "\n\n".join(paras)
                                            + "\n\nSubscribe to our newsletter.\n", encoding="utf-8")
    (articles / "empty.txt").write_text("")
    (articles / "notes.docx").write_bytes(b"PK\x03\x04")
    return [str(d / "table.jsonl"), str(articles)]


def _read(path: Path) -> pd.DataFrame:
    if path.is_dir():
        return pd.read_parquet(path)  # the shards as one dataset; the manifest's name starts with _
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False)
    return pd.read_json(path, lines=True, dtype=False)


def assert_same_labels(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Row for row: probabilities within the rounding step, everything else identical."""
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    scores = [c for c in a.columns if c.startswith("p_") or c.endswith("_scores")]
    pd.testing.assert_frame_equal(a.drop(columns=scores), b.drop(columns=scores))
    for c in scores:
        if c.endswith("_scores"):  # JSONL: nested dicts of scores
            left, right = pd.json_normalize(a[c].tolist()), pd.json_normalize(b[c].tolist())
        else:
            left, right = a[[c]], b[[c]]
        # (a Parquet file whose parts could not share one schema keeps every column as text)
        assert (left.astype(float) - right.astype(float)).abs().to_numpy().max() <= 1e-4 + 1e-9, c


@needs_ray
@pytest.mark.parametrize("fmt,backend", [("jsonl", "torch"), ("csv", "onnx"), ("parquet", "onnx"),
                                         ("jsonl", "onnx-int8")])
def test_ray_engine_equals_the_local_engine_row_for_row(tiny_model, cluster, corpus, tmp_path, fmt, backend):
    local, shard = tmp_path / f"local.{fmt}", tmp_path / f"ray.{fmt}"
    expected = run_label(corpus, str(local), model=tiny_model, backend=backend, threads=1, chunk_size=32, **QUIET)
    got = distributed.run_label_ray(corpus, str(shard), model=tiny_model, backend=backend, chunk_size=32,
                                    shard_size=64, workers=2, **QUIET)
    a, b = _read(local), _read(shard)
    assert len(a) == 300 - 2 + 3 * 8
    assert_same_labels(a, b)
    assert b["id"].tolist()[:2] == ["r0", "r1"] and b["id"].tolist()[-1] == "a2-p8"
    assert {k: got[k] for k in ("labelled", "skipped", "flagged", "files", "ignored_files", "dropped")} == \
           {k: expected[k] for k in ("labelled", "skipped", "flagged", "files", "ignored_files", "dropped")}
    assert got["skipped"] == 3 and got["dropped"]["headline"] == 3 and got["ignored_files"] == 1
    assert not Path(str(shard) + ".shards").exists()  # assembled, shards removed
    if fmt != "parquet":  # the same chunks, backend and threads: the very same bytes
        assert shard.read_bytes() == local.read_bytes()
    if backend == "onnx-int8":  # the same close calls rechecked in fp32, chunk by chunk
        assert got["rechecked"] == expected["rechecked"] > 0
        assert got["rechecked"] == sum(w["rechecked"] for w in got["workers"])


@needs_ray
def test_folder_output_is_parquet_shards_with_a_manifest(tiny_model, cluster, corpus, tmp_path):
    out = tmp_path / "labels"
    distributed.run_label_ray(corpus, str(out), model=tiny_model, chunk_size=32, shard_size=64, workers=2, **FAST)
    manifest = json.loads((out / "_manifest.json").read_text())
    names = sorted(p.name for p in out.glob("part-*.parquet"))
    assert names == [f"part-{i:05d}.parquet" for i in range(6)]  # 325 items in shards of 64
    assert manifest["done"] is True and [f["name"] for s in manifest["shards"] for f in s["files"]] == names
    assert [s["items"] for s in manifest["shards"]] == [64] * 5 + [5]
    assert sum(s["rows"] for s in manifest["shards"]) == manifest["counts"]["labelled"] == 322
    assert manifest["signature"]["model_fingerprint"] and manifest["signature"]["shard_size"] == 64
    df = _read(out)  # one dataset: the shards share one schema, though the last has no table rows
    assert list(df.columns) == manifest["columns"]
    assert df["year"].dtype.kind in "if" and df["p_putin_favor"].dtype.kind == "f"
    run_label(corpus, str(tmp_path / "local.csv"), model=tiny_model, threads=1, chunk_size=32, **FAST)
    local = _read(tmp_path / "local.csv")
    same = [c for c in df.columns if c not in ("paragraph", "year", "outlet")]  # typed apart from CSV's text
    assert_same_labels(local[same].astype(df[same].dtypes.to_dict()), df[same])
    with pytest.raises(Exception, match="use --resume"):
        distributed.run_label_ray(corpus, str(out), model=tiny_model, chunk_size=32, shard_size=64, **FAST)
    assert distributed.run_label_ray(corpus, str(out), model=tiny_model, chunk_size=32, shard_size=64,
                                     resume=True, **FAST)["already_complete"]


class _Killed(Exception):
    pass


@needs_ray
def test_a_killed_run_resumes_shard_by_shard_with_every_row_once(tiny_model, cluster, corpus, tmp_path,
                                                                 monkeypatch):
    out = tmp_path / "out.jsonl"
    real_save = distributed._Manifest.save
    saves = {"n": 0}

    def dying_save(self, state):
        saves["n"] += 1
        if saves["n"] == 6:  # the fifth shard is renamed into place, but the manifest never hears of it
            raise _Killed()
        real_save(self, state)

    monkeypatch.setattr(distributed._Manifest, "save", dying_save)
    with pytest.raises(_Killed):
        distributed.run_label_ray(corpus, str(out), model=tiny_model, chunk_size=16, shard_size=32, workers=2,
                                  **FAST)
    monkeypatch.setattr(distributed._Manifest, "save", real_save)
    shards = tmp_path / "out.jsonl.shards"
    manifest = json.loads((shards / "_manifest.json").read_text())
    assert [s["index"] for s in manifest["shards"]] == [0, 1, 2, 3]
    assert (shards / "part-00004.jsonl").exists()  # written, not recorded: to be redone
    (shards / "part-00001.jsonl").unlink()  # a shard lost after it was recorded
    (shards / "part-00007.tmp").write_text('{"id": "half a row')  # a worker's half-written shard
    with pytest.raises(Exception, match="use --resume"):
        distributed.run_label_ray(corpus, str(out), model=tiny_model, chunk_size=16, shard_size=32, **FAST)
    messages = []
    distributed.run_label_ray(corpus, str(out), model=tiny_model, backend="onnx", chunk_size=16, shard_size=32,
                              workers=2, resume=True, progress=False, log=messages.append)
    assert any("shard 1 (part-00001.jsonl) is missing" in m for m in messages)
    assert not shards.exists()
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 322
    local = tmp_path / "local.jsonl"
    run_label(corpus, str(local), model=tiny_model, threads=1, chunk_size=16, **FAST)
    assert_same_labels(_read(local), _read(out))


@needs_ray
def test_kill_9_of_the_driver_and_resume_yields_every_row_once(tiny_model, cluster, tmp_path):
    rows = [{"id": f"k{i}", "text": r["text"]} for i, r in enumerate(synthetic_records(4000, seed=3))]
    inp = tmp_path / "big.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "labels"
    cmd = [sys.executable, "-m", "stance.cli", "label", str(inp), "-o", str(out), "--model", str(tiny_model),
           "--engine", "ray", "--address", cluster, "--workers", "2", "--chunk-size", "20", "--shard-size", "40",
           "--backend", "onnx", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, env=env)
    manifest = out / "_manifest.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if len(json.loads(manifest.read_text())["shards"]) >= 5:
                break
        except (OSError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(json.loads(manifest.read_text())["shards"])
    assert 0 < written < 100
    distributed.run_label_ray([str(inp)], str(out), model=tiny_model, chunk_size=20, shard_size=40, workers=2,
                              resume=True, **FAST)
    assert _read(out)["id"].tolist() == [f"k{i}" for i in range(4000)]


@needs_ray
def test_label_dataset_adds_label_columns_to_a_ray_dataset(tiny_model, cluster):
    from stance import Labeler

    texts = [r["text"] for r in synthetic_records(60, seed=4)]
    texts[5] = ""
    frame = pd.DataFrame({"text": texts, "outlet": [f"o{i % 4}" for i in range(60)]})
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    try:
        ds = ray.data.from_items(frame.to_dict("records"), override_num_blocks=4)
        got = distributed.label_dataset(ds, tiny_model, backend="onnx", workers=2, rows_per_call=16,
                                        log=lambda m: None).to_pandas()
    finally:
        ctx.execution_options.preserve_order = False
    labeler = Labeler.from_pretrained(tiny_model, backend="onnx", threads=1)
    expected = labeler.label_frame(frame.drop(index=5), text_col="text").reset_index(drop=True)
    assert got["outlet"].tolist() == frame["outlet"].tolist()
    assert got.loc[5, ["stance_putin", "p_frame_isolation", "english"]].isna().all()
    got = got.drop(index=5).reset_index(drop=True)
    assert_same_labels(expected, got.astype(expected.dtypes.to_dict()))


def test_without_ray_the_engine_says_how_to_install_it(tiny_model, corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    code = main(["label", corpus[0], "-o", str(tmp_path / "x.csv"), "--model", str(tiny_model), "--engine", "ray",
                 "--no-progress"])
    assert code == 2
    assert "pip install '.[ray]'" in capsys.readouterr().err


def test_only_the_distributed_module_imports_ray():
    importers = [p.name for p in (ROOT / "stance").glob("*.py")
                 if "import ray" in p.read_text(encoding="utf-8") or "from ray" in p.read_text(encoding="utf-8")]
    assert importers == ["distributed.py"]
    code = "import sys, stance, stance.cli, stance.labeling, stance.labeler; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


@needs_ray
def test_on_error_fail_stops_at_the_bad_item_keeping_the_whole_shards_before_it(tiny_model, cluster, corpus,
                                                                             tmp_path, capsys):
    out = tmp_path / "labels"
    code = main(["label", corpus[0], "-o", str(out), "--model", str(tiny_model), "--engine", "ray", "--backend",
                 "onnx", "--workers", "2", "--chunk-size", "8", "--shard-size", "8", "--on-error", "fail",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and f"{corpus[0]}:18: empty or whitespace-only text" in err
    assert "Every whole shard before it is saved" in err
    manifest = json.loads((out / "_manifest.json").read_text())
    assert [s["index"] for s in manifest["shards"]] == [0, 1] and not manifest["done"]


@needs_ray
def test_options_are_checked_before_any_work(tiny_model, corpus, tmp_path, capsys):
    code = main(["label", corpus[0], "-o", str(tmp_path / "a.csv"), "--workers", "2", "--no-progress"])
    assert code == 2 and "go with --engine ray" in capsys.readouterr().err
    with pytest.raises(Exception, match="whole multiple of --chunk-size"):
        distributed.run_label_ray(corpus, str(tmp_path / "b.csv"), model=tiny_model, chunk_size=30, shard_size=64,
                                  **QUIET)
    with pytest.raises(Exception, match="folder output holds Parquet shards"):
        distributed.run_label_ray(corpus, str(tmp_path / "folder"), model=tiny_model, fmt="csv", **QUIET)
