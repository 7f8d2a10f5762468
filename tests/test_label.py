"""`stance label` and the notebook API: formats, resuming after a kill, and bad input."""
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import synthetic_records
from stance import Labeler
from stance.cli import main
from stance.labeling import Checkpoint, run_label


def _table(tmp_path, n=60, name="in.jsonl"):
    # five paragraphs a document, so chunks and a resumed run cut documents in the middle
    rows = [{"id": f"r{i}", "doc_id": f"doc{i // 5}", "text": r["text"], "outlet": f"outlet{i % 3}",
             "date": f"2024-01-{i % 28 + 1:02d}"}
            for i, r in enumerate(synthetic_records(n, seed=5))]
    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif name.endswith(".csv"):
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def _read(path):
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_json(path, lines=True)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
@pytest.mark.parametrize("source", ["in.jsonl", "in.csv", "in.parquet"])
def test_every_format_round_trips_through_pandas_with_columns_carried(tiny_model, tmp_path, fmt, source):
    inp = _table(tmp_path, 12, source)
    out = tmp_path / f"out.{fmt}"
    run_label([str(inp)], str(out), model=tiny_model, progress=False, log=lambda m: None)
    df = _read(out)
    assert df["id"].tolist() == [f"r{i}" for i in range(12)]
    assert df["outlet"].tolist()[:3] == ["outlet0", "outlet1", "outlet2"]
    assert set(map(str, df["date"]))  # carried through
    if fmt == "jsonl":
        first = json.loads(out.read_text().splitlines()[0])
        assert set(first["stance"]) == {"putin", "trump", "russia", "ukraine", "west"}
        assert abs(sum(first["stance_scores"]["putin"].values()) - 1) < 1e-3
        assert isinstance(first["frames"], list) and set(first["frame_scores"]) == {"isolation", "resentment", "grand_bargain"}
        assert first["windows"] == 1
    else:
        for col in ["stance_putin", "p_putin_favor", "frame_isolation", "p_frame_isolation", "windows", "english"]:
            assert col in df.columns
        assert set(df["frame_isolation"].unique()) <= {0, 1}


def test_articles_are_split_and_boilerplate_counted(tiny_model, tmp_path, capsys):
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "one.txt").write_text("Headline about Putin\n\nBy Jane Roe\n\nVladimir Putin flew to Beijing on Monday "
                                    "for talks with Xi Jinping.\n\nSubscribe to our newsletter.\n\nNATO said it "
                                    "was watching closely.\n", encoding="utf-8")
    (folder / "two.md").write_text("# Trump and Kyiv\n\nDonald Trump spoke to Zelensky by phone for an hour.\n",
                                   encoding="utf-8")
    (folder / "notes.docx").write_bytes(b"PK\x03\x04")
    out = tmp_path / "out.jsonl"
    assert main(["label", str(folder), "-o", str(out), "--model", str(tiny_model), "--no-progress"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["doc_id"], r["paragraph"]) for r in rows] == [("one", 1), ("one", 2), ("two", 1)]
    assert rows[0]["id"] == "one-p1"
    err = capsys.readouterr().err
    assert "dropped 2 headlines, 1 bylines, 1 boilerplate lines" in err and "1 ignored" in err


def test_csv_cells_never_start_a_formula(tiny_model, tmp_path):
    inp = tmp_path / "in.csv"
    pd.DataFrame({"text": ["=HYPERLINK(\"x\") Putin spoke.", "+Trump spoke.", "-Kyiv spoke.", "@NATO spoke."],
                  "note": ["=1+1", "ok", "-3", "@me"]}).to_csv(inp, index=False)
    out = tmp_path / "out.csv"
    run_label([str(inp)], str(out), model=tiny_model, progress=False, log=lambda m: None)
    df = pd.read_csv(out, dtype=str)
    for col in ["text", "note"]:
        assert not df[col].str.match(r"^[=+\-@]").any()
    assert df["text"][0] == "'=HYPERLINK(\"x\") Putin spoke."


class _Killed(Exception):
    pass


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_a_run_stopped_between_write_and_checkpoint_resumes_exactly(tiny_model, tmp_path, monkeypatch, fmt):
    inp = _table(tmp_path, 50)
    full = tmp_path / f"full.{fmt}"
    run_label([str(inp)], str(full), model=tiny_model, chunk_size=8, progress=False, log=lambda m: None)
    out = tmp_path / f"part.{fmt}"
    calls = {"n": 0}
    real_save = Checkpoint.save

    def dying_save(self, state):
        calls["n"] += 1
        if calls["n"] == 3:  # the third chunk is on disk but its checkpoint never is
            raise _Killed()
        real_save(self, state)

    monkeypatch.setattr(Checkpoint, "save", dying_save)
    with pytest.raises(_Killed):
        run_label([str(inp)], str(out), model=tiny_model, chunk_size=8, progress=False, log=lambda m: None)
    monkeypatch.setattr(Checkpoint, "save", real_save)
    if fmt != "parquet":
        assert len(_read(out)) == 24  # the killed file is readable: three chunks written
    with pytest.raises(Exception, match="use --resume"):
        run_label([str(inp)], str(out), model=tiny_model, progress=False, log=lambda m: None)
    run_label([str(inp)], str(out), model=tiny_model, chunk_size=8, resume=True, progress=False, log=lambda m: None)
    a, b = _read(full), _read(out)
    assert b["id"].tolist() == a["id"].tolist()
    pd.testing.assert_frame_equal(a.drop(columns=["source"]), b.drop(columns=["source"]))
    assert not Checkpoint(out).path.exists()


def test_kill_9_and_resume_yields_every_row_once(tiny_model, tmp_path):
    inp = _table(tmp_path, 3000)
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "stance.cli", "label", str(inp), "-o", str(out), "--model", str(tiny_model),
           "--chunk-size", "50", "--no-progress"]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    checkpoint = Checkpoint(out).path
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if checkpoint.exists():
            try:
                if json.loads(checkpoint.read_text())["consumed"] >= 200:
                    break
            except (json.JSONDecodeError, KeyError):
                pass
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(out.read_text().splitlines())
    assert 0 < done_before < 3000
    assert subprocess.run(cmd + ["--resume"], stderr=subprocess.DEVNULL).returncode == 0
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == [f"r{i}" for i in range(3000)]


def _run(args, capsys):
    code = main(["label", *map(str, args), "--no-progress"])
    return code, capsys.readouterr().err


def test_bad_inputs_get_clear_messages_and_exit_codes(tiny_model, tmp_path, capsys):
    m = ["--model", tiny_model]
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Putin spoke in Moscow today about the war.\n\nThe caf\u00e9 was closed.\n".encode("cp1252"))
    code, err = _run([latin, "-o", tmp_path / "a.jsonl", "--on-error", "fail", *m], capsys)
    assert code == 1 and f"{latin}:3: cannot decode byte 0xe9 as utf-8; pass --encoding" in err
    code, err = _run([latin, "-o", tmp_path / "a2.jsonl", "--encoding", "cp1252", *m], capsys)
    assert code == 0 and "labelled 2 paragraphs" in err

    empty = tmp_path / "empty.txt"
    empty.write_text("")
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x89PNG\x00\x00\x00binary")
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("body,outlet\nPutin spoke.,X\n")
    blanks = tmp_path / "blanks.jsonl"
    blanks.write_text('{"text": "Kyiv said no to the plan."}\n{"text": "   "}\n{"text": null}\n')
    french = tmp_path / "fr.txt"
    french.write_text("Le Kremlin a déclaré lundi que les pourparlers avec Washington auraient lieu comme prévu.\n")
    out = tmp_path / "b.csv"
    code, err = _run([empty, binary, nocol, blanks, french, "-o", out, *m], capsys)
    assert code == 0
    assert f"{empty}: the file is empty" in err
    assert f"{binary}: looks like a binary file" in err
    assert f"{nocol}: no text column 'text'; columns found: body, outlet (choose one with --text-col)" in err
    assert f"{blanks}:2: empty or whitespace-only text" in err and f"{blanks}:3: missing text" in err
    assert "labelled 2 paragraphs (1 flagged as not English), skipped 5" in err
    df = pd.read_csv(out)
    assert df.set_index("text")["english"].to_dict() == {"Kyiv said no to the plan.": True, df["text"][1]: False}

    code, err = _run([nocol, "-o", tmp_path / "c.csv", "--on-error", "fail", *m], capsys)
    assert code == 1 and "no text column 'text'" in err
    code, err = _run([nocol, "-o", tmp_path / "c2.csv", "--text-col", "body", *m], capsys)
    assert code == 0
    code, err = _run([nocol, "-o", out, *m], capsys)
    assert code == 2 and "exists; use --resume" in err
    code, err = _run([tmp_path / "missing.txt", "-o", tmp_path / "d.csv", *m], capsys)
    assert code == 2 and "no such file or folder" in err
    code, err = _run([nocol, "-o", tmp_path / "e.xlsx", *m], capsys)
    assert code == 2 and "cannot tell the output format" in err


def test_notebook_api_returns_dataframes(tiny_model):
    labeler = Labeler.from_pretrained(tiny_model)
    df = labeler.label(["Putin spoke.", "NATO met."], ids=["a", "b"])
    assert df["id"].tolist() == ["a", "b"] and "stance_putin" in df and "p_frame_isolation" in df
    frame = pd.DataFrame({"body": ["Kyiv said no.", "Trump said yes."], "outlet": ["X", "Y"]}, index=[10, 20])
    labelled = labeler.label_frame(frame, text_col="body")
    assert labelled.index.tolist() == [10, 20] and labelled["outlet"].tolist() == ["X", "Y"]
    with pytest.raises(Exception, match="no column 'text'; the columns are: body, outlet"):
        labeler.label_frame(frame)
    with pytest.raises(Exception, match="text 1: empty"):
        labeler.label(["fine", " "])
    nested = labeler.nested({"id": "a", "text": "t", "outlet": "X", **labeler.rows(["Putin spoke."])[0]})
    assert nested["outlet"] == "X" and set(nested["stance"]) == set(labeler.codebook.actor_ids)


def test_a_switched_off_progress_bar_is_not_a_notebook_widget(monkeypatch):
    """In Jupyter without ipywidgets a notebook bar warns even when disabled; off means plain."""
    from tqdm.notebook import tqdm_notebook

    from stance import labeler

    monkeypatch.setattr(labeler, "_in_notebook", lambda: True)
    off = labeler._progress_bar(10, False, "x")
    assert off.disable and not isinstance(off, tqdm_notebook)
    off.close()
