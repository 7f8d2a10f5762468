"""The annotation loop: tool exports in, tasks out, agreement, and what to annotate next.

The export files below are written by hand in each tool's real shape (Label Studio's JSON export
with its task and annotation fields, Prodigy's ``db-out`` JSONL with hashes and session ids,
doccano's per-user JSONL), so the importers are tested against what the tools write.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import pytest

from conftest import synthetic_records
from stance.annotation import (ImportProblems, import_annotations, labelstudio_config, options,
                               write_import)
from stance.cli import main
from stance.errors import StanceError
from stance.suggest import Uncertainty, near_duplicate_key, select

ACTORS = ["putin", "trump", "russia", "ukraine", "west"]
FRAMES = ["isolation", "resentment", "grand_bargain"]
TEXTS = {
    "doc1-p1": "Vladimir Putin was snubbed at the summit, where no Western leader would stand next to him.",
    "doc1-p2": "Donald Trump said he would meet the Russian president soon to discuss a broad deal.",
    "doc2-p1": "Russian state television blamed Russophobia in the collective West for the sanctions.",
    "doc2-p2": "Ukrainian forces said on Tuesday that they had repelled an attack near Kharkiv.",
}


# -- hand-written exports -----------------------------------------------------------------------
def ls_result(name, choices, rid):
    return {"value": {"choices": choices}, "id": rid, "from_name": name, "to_name": "text",
            "type": "choices", "origin": "manual"}


def ls_annotation(ann_id, user, task_id, results, cancelled=False):
    return {"id": ann_id, "completed_by": user, "result": results, "was_cancelled": cancelled,
            "ground_truth": False, "created_at": "2025-03-04T10:12:31.118254Z",
            "updated_at": "2025-03-04T10:12:31.118280Z", "draft_created_at": None, "lead_time": 38.517,
            "prediction": {}, "result_count": 0, "unique_id": f"8f1c2a7e-{ann_id:04d}", "import_id": None,
            "last_action": None, "task": task_id, "project": 7, "updated_by": user,
            "parent_prediction": None, "parent_annotation": None, "last_created_by": None}


def ls_task(task_id, pid, annotations):
    return {"id": task_id, "annotations": annotations, "file_upload": "3c1f9d2a-tasks.json", "drafts": [],
            "predictions": [],
            "data": {"text": TEXTS[pid], "id": pid, "doc_id": pid.split("-")[0], "outlet": "Example Post"},
            "meta": {}, "created_at": "2025-03-01T08:00:00.000000Z", "updated_at": "2025-03-04T10:12:31.200000Z",
            "inner_id": task_id - 100, "total_annotations": len(annotations), "cancelled_annotations": 0,
            "total_predictions": 0, "comment_count": 0, "unresolved_comment_count": 0,
            "last_comment_updated_at": None, "project": 7, "updated_by": 1, "comment_authors": []}


def stance_results(values: dict, frames=None, prefix="stance_"):
    out = [ls_result(f"{prefix}{a}", [v], f"r{a[:3]}{k}") for k, (a, v) in enumerate(values.items())]
    if frames is not None:
        out.append(ls_result("frames", frames, "rfr"))
    return out


def full(**given):
    return {a: given.get(a, "none") for a in ACTORS}


def labelstudio_export():
    """Two annotators (user ids 1 and 2) on the same tasks; one cancelled, one task unannotated."""
    t101_alice = stance_results(full(putin="against", west="neutral"), ["isolation"])
    t101_alice[1]["from_name"] = "trump"  # a bare actor id is a from_name too
    t101_alice[0]["value"]["choices"] = ["Against"]  # value ids match case-insensitively
    t101_alice.append({"value": {"text": ["sarcastic tone?"]}, "id": "rnote", "from_name": "notes",
                       "to_name": "text", "type": "textarea", "origin": "manual"})
    t101_bob = stance_results(full(putin="against", west="against"), ["isolation", "resentment"])
    t102_alice = stance_results(full(trump="neutral", putin="neutral"), ["grand_bargain"])
    t102_bob = stance_results(full(trump="favor", putin="neutral"))  # no frames result: no frames
    t103_alice = stance_results(full(russia="against", west="neutral"), ["resentment"])
    t103_bob_cancelled = []
    return [
        ls_task(101, "doc1-p1", [ls_annotation(501, 1, 101, t101_alice), ls_annotation(502, 2, 101, t101_bob)]),
        ls_task(102, "doc1-p2", [ls_annotation(503, 1, 102, t102_alice), ls_annotation(504, 2, 102, t102_bob)]),
        ls_task(103, "doc2-p1", [ls_annotation(505, 1, 103, t103_alice),
                                 ls_annotation(506, 2, 103, t103_bob_cancelled, cancelled=True)]),
        ls_task(104, "doc2-p2", []),
    ]


def write_json(path, obj):
    path.write_text(json.dumps(obj, indent=2), encoding="utf-8")
    return path


def write_lines(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def prodigy_record(pid, accept, answer="accept", annotator="stance_ann-alice", k=0):
    return {"id": pid, "doc_id": pid.split("-")[0], "text": TEXTS[pid],
            "options": [{"id": o, "text": o} for o in options_default()],
            "config": {"choice_style": "multiple"}, "meta": {"id": pid, "doc_id": pid.split("-")[0],
                                                              "outlet": "Example Post"},
            "_input_hash": -1203348714 + k, "_task_hash": 1937706542 + k, "_view_id": "choice",
            "accept": accept, "answer": answer, "_timestamp": 1741083151 + k,
            "_annotator_id": annotator, "_session_id": annotator}


def options_default():
    from stance.codebook import Codebook

    return options(Codebook.load())


def prodigy_export(tmp_path):
    rows = [
        prodigy_record("doc1-p1", ["putin:against", "trump:none", "russia:none", "ukraine:none", "west:neutral",
                                   "frame:isolation"], k=1),
        prodigy_record("doc1-p2", ["putin:neutral"], answer="reject", k=2),
        prodigy_record("doc2-p1", [], answer="ignore", k=3),
        prodigy_record("doc2-p2", ["putin:none", "trump:none", "russia:against", "ukraine:neutral", "west:none"],
                       k=4),
    ]
    return write_lines(tmp_path / "stance_ann.jsonl", rows)


def doccano_export(tmp_path):
    rows = [
        {"id": 17, "text": TEXTS["doc1-p1"], "label": ["putin:against", "trump:none", "russia:none",
                                                       "ukraine:none", "west:neutral", "frame:isolation"],
         "Comments": [], "paragraph_id": "doc1-p1", "doc_id": "doc1", "outlet": "Example Post"},
        {"id": 18, "text": TEXTS["doc1-p2"], "label": [], "Comments": [], "paragraph_id": "doc1-p2",
         "doc_id": "doc1"},
        {"id": 19, "text": TEXTS["doc2-p1"], "label": ["frame:resentment", "putin:none", "trump:none",
                                                       "russia:against", "ukraine:none", "west:neutral"],
         "Comments": [], "paragraph_id": "doc2-p1", "doc_id": "doc2"},
    ]
    return write_lines(tmp_path / "carol.jsonl", rows)


CSV_HEADER = "id,doc_id,text,annotator,putin,stance_trump,russia,ukraine,west,frame_isolation,resentment," \
             "frame_grand_bargain,outlet"


def csv_export(tmp_path, rows=None):
    rows = rows or [
        f'doc1-p1,doc1,"{TEXTS["doc1-p1"]}",dave,against,none,none,none,neutral,1,0,,Example Post',
        f'doc1-p2,doc1,"{TEXTS["doc1-p2"]}",dave,neutral,favor,none,none,none,0,0,yes,',
    ]
    path = tmp_path / "coded.csv"
    path.write_text(CSV_HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def labels(records):
    return {r["id"]: (r["stance"], r["frames"]) for r in records}


# -- import: each tool --------------------------------------------------------------------------
def test_labelstudio_multi_annotator_export_splits_into_valid_passes(tmp_path, capsys):
    export = write_json(tmp_path / "project-7-at-2025-03-04.json", labelstudio_export())
    out = tmp_path / "passes"
    assert main(["import", str(export), "--from", "labelstudio", "--split-by-annotator", str(out)]) == 0
    err = capsys.readouterr().err
    assert "imported 5 annotation(s)" in err and "1 cancelled" in err and "1 unannotated" in err
    files = sorted(p.name for p in out.iterdir())
    assert files == ["1.jsonl", "2.jsonl"]
    for f in files:
        assert main(["validate", str(out / f)]) == 0
    alice = {r["id"]: r for r in read_jsonl(out / "1.jsonl")}
    bob = {r["id"]: r for r in read_jsonl(out / "2.jsonl")}
    assert set(alice) == {"doc1-p1", "doc1-p2", "doc2-p1"} and set(bob) == {"doc1-p1", "doc1-p2"}
    r = alice["doc1-p1"]
    assert r["stance"] == full(putin="against", west="neutral") and r["frames"] == ["isolation"]
    assert r["annotator"] == "1" and r["doc_id"] == "doc1" and r["text"] == TEXTS["doc1-p1"]
    assert r["source"]["task"] == 101 and r["source"]["annotation"] == 501
    assert r["notes"] == "sarcastic tone?" and r["outlet"] == "Example Post"
    assert bob["doc1-p1"]["frames"] == ["isolation", "resentment"]
    assert bob["doc1-p2"]["frames"] == [] and bob["doc1-p2"]["stance"]["trump"] == "favor"
    assert all(r["annotator"] == "2" for r in bob.values())

    # one file cannot hold two passes: a clear error pointing at --split-by-annotator
    code = main(["import", str(export), "--from", "labelstudio", "-o", str(tmp_path / "one.jsonl")])
    assert code == 2
    assert "--split-by-annotator" in capsys.readouterr().err
    assert not (tmp_path / "one.jsonl").exists()

    # the two passes go straight into agreement
    capsys.readouterr()
    assert main(["agreement", str(out / "1.jsonl"), str(out / "2.jsonl"), "--json", "--n-boot", "20",
                 "--disagreements", str(tmp_path / "dis.jsonl")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 2
    dis = read_jsonl(tmp_path / "dis.jsonl")
    assert any(d["id"] == "doc1-p1" and d["field"] == "stance:west"
               and d["values"] == {"1": "neutral", "2": "against"} for d in dis)
    assert all(d["text"] for d in dis)


def test_labelstudio_expanded_user_objects_and_old_completions(tmp_path, codebook):
    task = ls_task(201, "doc2-p2", [])
    del task["annotations"]
    ann = ls_annotation(601, {"id": 4, "first_name": "Eve", "last_name": "", "email": "eve@example.org"}, 201,
                        stance_results(full(ukraine="neutral")))
    task["completions"] = [ann]
    export = write_json(tmp_path / "old.json", [task])
    result = import_annotations(export, "labelstudio", codebook)
    assert [r["annotator"] for r in result.records] == ["eve@example.org"]
    assert result.records[0]["stance"]["ukraine"] == "neutral"


def test_prodigy_rejected_and_ignored_answers_are_dropped_and_counted(tmp_path, capsys):
    export = prodigy_export(tmp_path)
    out = tmp_path / "prodigy.jsonl"
    assert main(["import", str(export), "--from", "prodigy", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "imported 2 annotation(s)" in err
    assert "1 rejected answer(s) dropped" in err and "1 ignored answer(s) dropped" in err
    assert main(["validate", str(out)]) == 0
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["doc1-p1", "doc2-p2"]
    assert rows[0]["stance"] == full(putin="against", west="neutral") and rows[0]["frames"] == ["isolation"]
    assert rows[1]["stance"] == full(russia="against", ukraine="neutral") and rows[1]["frames"] == []
    assert {r["annotator"] for r in rows} == {"stance_ann-alice"}
    assert rows[0]["source"] == {"tool": "prodigy", "file": str(export), "line": 1, "session": "stance_ann-alice"}
    assert rows[0]["outlet"] == "Example Post"


def test_doccano_export_per_user_file(tmp_path, capsys):
    export = doccano_export(tmp_path)
    out = tmp_path / "doccano.jsonl"
    assert main(["import", str(export), "--from", "doccano", "-o", str(out)]) == 0
    assert "1 unannotated" in capsys.readouterr().err
    assert main(["validate", str(out)]) == 0
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["doc1-p1", "doc2-p1"]  # the paragraph id, not doccano's 17, 19
    assert rows[1]["frames"] == ["resentment"] and rows[1]["stance"]["russia"] == "against"
    assert {r["annotator"] for r in rows} == {"carol"}  # doccano names each user's file after the user
    assert rows[0]["source"]["example"] == 17


def test_csv_with_actor_and_frame_columns(tmp_path):
    out = tmp_path / "csv.jsonl"
    assert main(["import", str(csv_export(tmp_path)), "--from", "csv", "-o", str(out)]) == 0
    assert main(["validate", str(out)]) == 0
    rows = read_jsonl(out)
    assert rows[0]["stance"] == full(putin="against", west="neutral") and rows[0]["frames"] == ["isolation"]
    assert rows[1]["stance"] == full(putin="neutral", trump="favor") and rows[1]["frames"] == ["grand_bargain"]
    assert rows[0]["annotator"] == "dave" and rows[0]["outlet"] == "Example Post" and "outlet" not in rows[1]
    assert rows[1]["source"] == {"tool": "csv", "file": str(tmp_path / "coded.csv"), "line": 3}


def test_missing_actor_is_an_error_unless_missing_as_absent(tmp_path, codebook, capsys):
    results = stance_results({"putin": "against", "trump": "none", "russia": "none", "ukraine": "none"},
                             ["isolation"])
    export = write_json(tmp_path / "ls.json", [ls_task(301, "doc1-p1", [ls_annotation(701, 3, 301, results)])])
    code = main(["import", str(export), "--from", "labelstudio", "-o", str(tmp_path / "x.jsonl")])
    assert code == 1
    err = capsys.readouterr().err
    assert f"{export}: task 301, annotation 701 by 3: missing stance for actor(s) west" in err
    assert "--missing-as-absent" in err
    out = tmp_path / "filled.jsonl"
    assert main(["import", str(export), "--from", "labelstudio", "-o", str(out), "--missing-as-absent"]) == 0
    assert read_jsonl(out)[0]["stance"]["west"] == "none"
    assert "1 missing actor(s) filled as absent" in capsys.readouterr().err


# -- import: malformed input --------------------------------------------------------------------
def _ls_with(results):
    return [ls_task(401, "doc1-p1", [ls_annotation(801, 5, 401, results)])]


MALFORMED = {
    "ls-unknown-choice": ("labelstudio", lambda: json.dumps(_ls_with(
        stance_results(full(putin="maybe"), []))),
        "{path}: task 401, annotation 801 by 5: unknown choice 'maybe' for actor 'putin'"),
    "ls-unknown-from-name": ("labelstudio", lambda: json.dumps(_ls_with(
        stance_results(full()) + [ls_result("stance_biden", ["favor"], "rb")])),
        "{path}: task 401, annotation 801 by 5: unknown from_name 'stance_biden'"),
    "ls-unknown-frame": ("labelstudio", lambda: json.dumps(_ls_with(stance_results(full(), ["sanctions"]))),
                         "{path}: task 401, annotation 801 by 5: unknown frame choice 'sanctions'"),
    "ls-bad-json": ("labelstudio", lambda: '[\n  {"id": 1,\n   "data": {"text": "x"}\n  ,,\n]\n',
                    "{path}:4: bad JSON"),
    "prodigy-bad-json-line": ("prodigy", lambda: json.dumps(prodigy_record(
        "doc1-p1", ["putin:none", "trump:none", "russia:none", "ukraine:none", "west:none"])) + "\n"
        + '{"text": "broken", "answer": "accept"\n', "{path}:2: bad JSON"),
    "prodigy-unknown-value": ("prodigy", lambda: json.dumps(prodigy_record(
        "doc1-p1", ["putin:maybe", "trump:none", "russia:none", "ukraine:none", "west:none"])),
        "{path}:1: unknown choice 'maybe' for actor 'putin'"),
    "prodigy-missing-actor": ("prodigy", lambda: "\n" + json.dumps(prodigy_record(
        "doc1-p1", ["putin:none", "trump:none", "russia:none", "ukraine:none"])),
        "{path}:2: missing stance for actor(s) west"),
    "doccano-unknown-actor": ("doccano", lambda: json.dumps(
        {"id": 1, "text": "Biden spoke.", "label": ["biden:favor"], "Comments": []}),
        "{path}:1: unknown actor 'biden' in label 'biden:favor'"),
    "doccano-unknown-frame": ("doccano", lambda: json.dumps(
        {"id": 1, "text": "x y", "label": [f"{a}:none" for a in ACTORS] + ["frame:sanctions"]}),
        "{path}:1: unknown frame 'sanctions' in label 'frame:sanctions'"),
    "doccano-two-values": ("doccano", lambda: json.dumps(
        {"id": 1, "text": "x y", "label": [f"{a}:none" for a in ACTORS] + ["putin:favor"]}),
        "{path}:1: two stance values for actor 'putin': 'none' and 'favor'"),
    "csv-unknown-value": ("csv", lambda: CSV_HEADER + "\n"
                          + f'a1,d1,"{TEXTS["doc1-p1"]}",dave,none,none,none,none,none,0,0,0,\n'
                          + f'a2,d1,"{TEXTS["doc1-p2"]}",dave,againts,none,none,none,none,0,0,0,\n',
                          "{path}:3: unknown choice 'againts' for actor 'putin'"),
    "csv-unknown-actor-column": ("csv", lambda: CSV_HEADER + ",stance_biden\n"
                                 + f'a1,d1,"{TEXTS["doc1-p1"]}",dave,none,none,none,none,none,0,0,0,,favor\n',
                                 "{path}:1: column 'stance_biden' is not an actor"),
    "csv-bad-frame-cell": ("csv", lambda: CSV_HEADER + "\n"
                           + f'a1,d1,"{TEXTS["doc1-p1"]}",dave,none,none,none,none,none,maybe,0,0,\n',
                           "{path}:2: frame column 'frame_isolation' holds 'maybe'"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_exports_name_file_and_line_or_task(tmp_path, capsys, case):
    tool, content, expected = MALFORMED[case]
    path = tmp_path / ("export.csv" if tool == "csv" else "export.json" if tool == "labelstudio"
                       else "export.jsonl")
    path.write_text(content(), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["import", str(path), "--from", tool, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert expected.format(path=path) in err, err
    assert not out.exists()


def test_problems_are_all_collected_and_same_annotator_twice_is_an_error(tmp_path, codebook):
    rows = [prodigy_record("doc1-p1", [f"{a}:none" for a in ACTORS], k=1),
            prodigy_record("doc1-p1", [f"{a}:none" for a in ACTORS], k=2),
            prodigy_record("doc1-p2", ["putin:none"], k=3)]
    path = write_lines(tmp_path / "p.jsonl", rows)
    with pytest.raises(ImportProblems) as e:
        import_annotations(path, "prodigy", codebook)
    problems = e.value.problems
    assert problems[0].startswith(f"{path}:2: paragraph 'doc1-p1' annotated twice by 'stance_ann-alice'")
    assert problems[1].startswith(f"{path}:3: missing stance for actor(s) trump, russia, ukraine, west")
    assert e.value.exit_code == 1


def test_write_import_needs_exactly_one_destination(tmp_path, codebook):
    result = import_annotations(prodigy_export(tmp_path), "prodigy", codebook)
    with pytest.raises(StanceError):
        write_import(result)
    with pytest.raises(StanceError):
        write_import(result, tmp_path / "a.jsonl", tmp_path / "dir")


# -- tasks and round trips ----------------------------------------------------------------------
def test_labelstudio_config_from_the_codebook(codebook):
    root = ET.fromstring(labelstudio_config(codebook))
    assert root.tag == "View"
    assert root.find("Text").attrib == {"name": "text", "value": "$text"}
    choices = {c.get("name"): c for c in root.iter("Choices")}
    assert list(choices) == [f"stance_{a}" for a in ACTORS] + ["frames"]
    for a in codebook.actors:
        c = choices[f"stance_{a.id}"]
        assert c.get("choice") == "single-radio" and c.get("toName") == "text" and c.get("required") == "true"
        assert [x.get("value") for x in c] == codebook.value_ids
        assert [x.get("hint") for x in c] == [" ".join(v.definition.split()) for v in codebook.stance_values]
    frames = choices["frames"]
    assert frames.get("choice") == "multiple"
    assert [x.get("value") for x in frames] == FRAMES
    for x, f in zip(frames, codebook.frames):
        assert x.get("hint").startswith(" ".join(f.definition.split()))
    headers = [h.get("value") for h in root.iter("Header")]
    assert any(h.startswith("Vladimir Putin (putin): Vladimir Putin personally") for h in headers)


def _input_table(tmp_path, n=12, seed=11):
    rows = [{"id": r["id"], "doc_id": r["doc_id"], "text": r["text"], "outlet": "Wire"}
            for r in synthetic_records(n, seed=seed, prefix="q")]
    return write_lines(tmp_path / "paragraphs.jsonl", rows)


def _model_labels(tiny_model, texts):
    from stance import Labeler

    lab = Labeler.from_pretrained(tiny_model, progress=False)
    return [({a: row[f"stance_{a}"] for a in ACTORS}, [f for f in FRAMES if row[f"frame_{f}"]])
            for row in lab.rows(texts)]


def _other_value(v):
    return "favor" if v != "favor" else "against"


def test_round_trip_labelstudio(tiny_model, tmp_path, capsys):
    inp = _input_table(tmp_path)
    tasks_path = tmp_path / "tasks.json"
    assert main(["tasks", str(inp), "--to", "labelstudio", "-o", str(tasks_path), "--model", str(tiny_model)]) == 0
    tasks = json.loads(tasks_path.read_text())
    config = ET.fromstring((tmp_path / "tasks.config.xml").read_text())
    names = {c.get("name") for c in config.iter("Choices")}
    assert len(tasks) == 12 and tasks[0]["data"]["outlet"] == "Wire"
    # the pre-filled predictions are the model's labels, with scores
    model = _model_labels(tiny_model, [t["data"]["text"] for t in tasks])
    export, expected = [], {}
    for k, (task, (m_stance, m_frames)) in enumerate(zip(tasks, model)):
        pred = task["predictions"][0]
        assert 0 <= pred["score"] <= 1 and pred["model_version"]
        by_name = {r["from_name"]: r for r in pred["result"]}
        assert set(by_name) <= names
        assert {a: by_name[f"stance_{a}"]["value"]["choices"][0] for a in ACTORS} == m_stance
        assert (by_name["frames"]["value"]["choices"] if "frames" in by_name else []) == m_frames
        assert all(0 <= r["score"] <= 1 for r in pred["result"])
        # the annotator starts from the prediction and changes something on some tasks
        result = [{k2: v for k2, v in r.items() if k2 != "score"} | {"origin": "prediction"} for r in pred["result"]]
        stance, frames = dict(m_stance), list(m_frames)
        if k % 3 == 0:
            result[0]["value"] = {"choices": [_other_value(stance["putin"])]}
            result[0]["origin"] = "prediction-changed"
            stance["putin"] = _other_value(stance["putin"])
        if k % 4 == 1:
            result = [r for r in result if r["from_name"] != "frames"]
            result.append(ls_result("frames", ["resentment", "isolation"], "fr"))
            frames = ["isolation", "resentment"]
        export.append(ls_task_from(task, 900 + k, [ls_annotation(1000 + k, 9, 900 + k, result)]))
        expected[task["data"]["id"]] = (stance, frames)
    exported = write_json(tmp_path / "export.json", export)
    out = tmp_path / "imported.jsonl"
    assert main(["import", str(exported), "--from", "labelstudio", "-o", str(out)]) == 0
    assert main(["validate", str(out)]) == 0
    assert labels(read_jsonl(out)) == expected


def ls_task_from(task, task_id, annotations):
    t = ls_task(task_id, "doc1-p1", annotations)
    t["data"] = task["data"]
    t["predictions"] = task["predictions"]
    return t


def test_round_trip_prodigy(tiny_model, tmp_path):
    inp = _input_table(tmp_path)
    tasks_path = tmp_path / "tasks.jsonl"
    assert main(["tasks", str(inp), "--to", "prodigy", "-o", str(tasks_path), "--model", str(tiny_model)]) == 0
    tasks = read_jsonl(tasks_path)
    model = _model_labels(tiny_model, [t["text"] for t in tasks])
    annotated, expected = [], {}
    for k, (task, (m_stance, m_frames)) in enumerate(zip(tasks, model)):
        assert task["config"] == {"choice_style": "multiple"}
        assert {o["id"] for o in task["options"]} >= set(task["accept"])
        assert task["accept"] == [f"{a}:{m_stance[a]}" for a in ACTORS] + [f"frame:{f}" for f in m_frames]
        assert 0 <= task["meta"]["score"] <= 1 and task["meta"]["outlet"] == "Wire"
        stance, frames = dict(m_stance), list(m_frames)
        accept = list(task["accept"])
        if k % 3 == 0:
            accept = [o for o in accept if not o.startswith("west:")] + [f"west:{_other_value(stance['west'])}"]
            stance["west"] = _other_value(stance["west"])
        if k % 5 == 0:
            accept = [o for o in accept if not o.startswith("frame:")] + ["frame:grand_bargain"]
            frames = ["grand_bargain"]
        answer = "reject" if k == 7 else "accept"
        annotated.append(task | {"accept": accept, "answer": answer, "_input_hash": 100 + k, "_task_hash": 200 + k,
                                 "_view_id": "choice", "_timestamp": 1741083151 + k,
                                 "_annotator_id": "stance-bob", "_session_id": "stance-bob"})
        if answer == "accept":
            expected[task["id"]] = (stance, frames)
    exported = write_lines(tmp_path / "db-out.jsonl", annotated)
    out = tmp_path / "imported.jsonl"
    assert main(["import", str(exported), "--from", "prodigy", "-o", str(out)]) == 0
    assert main(["validate", str(out)]) == 0
    rows = read_jsonl(out)
    assert labels(rows) == expected and {r["annotator"] for r in rows} == {"stance-bob"}
    assert all(r["outlet"] == "Wire" for r in rows)


def test_round_trip_doccano(tiny_model, tmp_path):
    inp = _input_table(tmp_path)
    tasks_path = tmp_path / "tasks.jsonl"
    assert main(["tasks", str(inp), "--to", "doccano", "-o", str(tasks_path), "--model", str(tiny_model)]) == 0
    label_set = json.loads((tmp_path / "tasks.labels.json").read_text())
    assert [x["text"] for x in label_set] == options_default()
    tasks = read_jsonl(tasks_path)
    model = _model_labels(tiny_model, [t["text"] for t in tasks])
    exported, expected = [], {}
    for k, (task, (m_stance, m_frames)) in enumerate(zip(tasks, model)):
        assert sorted(task["label"]) == sorted([f"{a}:{m_stance[a]}" for a in ACTORS] + [f"frame:{f}" for f in m_frames])
        label = list(reversed(task["label"]))  # doccano does not keep the order
        stance = dict(m_stance)
        if k % 2 == 0:
            label = [x for x in label if not x.startswith("trump:")] + [f"trump:{_other_value(stance['trump'])}"]
            stance["trump"] = _other_value(stance["trump"])
        exported.append({"id": 40 + k, **task, "label": label, "Comments": []})
        expected[task["paragraph_id"]] = (stance, m_frames)
    path = write_lines(tmp_path / "frank.jsonl", exported)
    out = tmp_path / "imported.jsonl"
    assert main(["import", str(path), "--from", "doccano", "-o", str(out)]) == 0
    assert main(["validate", str(out)]) == 0
    rows = read_jsonl(out)
    assert labels(rows) == expected and {r["annotator"] for r in rows} == {"frank"}


def test_tasks_without_predictions(tmp_path):
    inp = _input_table(tmp_path, n=3)
    out = tmp_path / "empty.json"
    assert main(["tasks", str(inp), "--to", "labelstudio", "-o", str(out), "--no-predictions",
                 "--config", str(tmp_path / "ls.xml")]) == 0
    tasks = json.loads(out.read_text())
    assert [set(t) for t in tasks] == [{"data"}] * 3 and (tmp_path / "ls.xml").exists()


# -- agreement ----------------------------------------------------------------------------------
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C (the same
# example tests/test_metrics.py checks the function on): four coders, twelve units, values 1-5,
# missing values; nominal alpha = 0.743.
N = None
KRIPPENDORFF_2011 = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    "C": [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
}


def test_agreement_command_reproduces_the_published_alpha(tmp_path, capsys):
    cb = tmp_path / "five.yaml"
    cb.write_text("name: five\nversion: '1'\nstance_values: [v1, v2, v3, v4, v5]\nactors:\n  - id: a\n",
                  encoding="utf-8")
    passes = []
    for coder, values in KRIPPENDORFF_2011.items():
        rows = [{"id": f"u{k}", "doc_id": f"u{k}", "text": f"unit {k}", "stance": {"a": f"v{v}"}, "frames": [],
                 "annotator": coder} for k, v in enumerate(values, 1) if v is not None]
        passes.append(str(write_lines(tmp_path / f"{coder}.jsonl", rows)))
    dis = tmp_path / "dis.jsonl"
    assert main(["agreement", *passes, "--codebook", str(cb), "--json", "--n-boot", "100",
                 "--disagreements", str(dis)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"stance:a", "n"}
    assert round(result["stance:a"], 3) == 0.743
    assert result["n"] == 11  # unit 12 has a single value: not pairable
    # units 2, 6 and 8 are where the coders differ
    assert [d["id"] for d in read_jsonl(dis)] == ["u2", "u6", "u8"]
    assert read_jsonl(dis)[1]["values"] == {"A": "v1", "B": "v2", "C": "v3", "D": "v4"}

    # the table: alpha with its interval, and kappa for each pair of coders
    assert main(["agreement", *passes, "--codebook", str(cb), "--n-boot", "100", "--disagreements", ""]) == 0
    table = capsys.readouterr().out
    assert "4 coders (A, B, C, D) on 11 paragraphs in 11 documents" in table
    assert "kappa A-B" in table and "kappa C-D" in table
    line = next(x for x in table.splitlines() if x.startswith("stance:a"))
    assert "0.743" in line and "[" in line


def _two_passes(tmp_path):
    base = synthetic_records(16, seed=21, prefix="g")
    second = json.loads(json.dumps(base))
    rnd = np.random.default_rng(0)
    for r in second:
        if rnd.random() < 0.3:
            r["stance"]["putin"] = "against" if r["stance"]["putin"] != "against" else "favor"
        if rnd.random() < 0.2:
            r["frames"] = [] if r["frames"] else ["isolation"]
    return (write_lines(tmp_path / "ann1.jsonl", base), write_lines(tmp_path / "ann2.jsonl", second[:14]))


def test_agreement_json_keys_for_two_passes_and_the_model_as_a_coder(tiny_model, tmp_path, capsys):
    p1, p2 = _two_passes(tmp_path)
    assert main(["agreement", str(p1), str(p2), "--json", "--n-boot", "50",
                 "--disagreements", str(tmp_path / "d.jsonl"), "--json-out", str(tmp_path / "full.json")]) == 0
    result = json.loads(capsys.readouterr().out)
    expected = {f"frame:{f}" for f in FRAMES} | {f"stance:{a}" for a in ACTORS} | {f"reference:{a}" for a in ACTORS}
    assert set(result) == expected | {"n"}
    assert result["n"] == 14
    assert result["stance:trump"] == pytest.approx(1.0) and result["stance:putin"] < 1.0
    full_result = json.loads((tmp_path / "full.json").read_text())
    assert full_result["coders"] == ["ann1", "ann2"] and "0-1" in full_result["kappa"]

    assert main(["agreement", str(p1), str(p2), "--model", str(tiny_model), "--n-boot", "50",
                 "--disagreements", str(tmp_path / "d2.jsonl")]) == 0
    table = capsys.readouterr().out
    assert "3 coders (ann1, ann2, model) on 16 paragraphs" in table
    assert "alpha humans" in table and "kappa ann1-model" in table
    dis = read_jsonl(tmp_path / "d2.jsonl")
    assert dis and all(set(d["values"]) <= {"ann1", "ann2"} and "model" in d for d in dis)


def test_agreement_reports_a_broken_pass_with_exit_1(tmp_path, capsys):
    p1, _ = _two_passes(tmp_path)
    bad = write_lines(tmp_path / "bad.jsonl", ['{"id": "x", "text": "t", "stance": {"putin": "meh"}}'])
    assert main(["agreement", str(p1), str(bad), "--disagreements", ""]) == 1
    assert f"{bad}:1: illegal stance value 'meh'" in capsys.readouterr().err


# -- suggest ------------------------------------------------------------------------------------
def _unc(total, stance, frames):
    return Uncertainty(np.array(stance, float), np.array(frames, float), np.array(total, float))


def test_select_round_robin_per_document_and_near_duplicates():
    from stance.codebook import Codebook

    cb = Codebook.from_dict({"name": "t", "stance_values": ["none", "favor"], "absent_value": "none",
                             "actors": [{"id": "a"}, {"id": "b"}], "frames": [{"id": "x"}]})
    texts = ["one alpha", "one alpha", "two beta", "three gamma", "four delta", "five eps", "six zeta"]
    docs = ["d1", "d2", "d1", "d1", "d3", "d4", "d5"]
    total = [0.9, 0.85, 0.8, 0.7, 0.1, 0.05, 0.0]
    stance = [[0.1, 0.1], [0.1, 0.1], [0.1, 0.1], [0.1, 0.1], [0.9, 0.0], [0.0, 0.0], [0.0, 0.95]]
    frames = [[0.0], [0.0], [0.0], [0.0], [0.0], [0.99], [0.0]]
    picked = select(docs, texts, _unc(total, stance, frames), cb, n=5, per_doc=2)
    assert picked == [(0, "overall"), (4, "stance:a"), (6, "stance:b"), (5, "frame:x"), (2, "overall")]
    # item 1 is a near-duplicate of item 0; item 3 would be a third paragraph of d1
    assert len(select(docs, texts, _unc(total, stance, frames), cb, n=10, per_doc=2)) == 5
    assert near_duplicate_key("Hello, World!  again", 2) == "hello world"


def test_suggest_picks_n_uncertain_paragraphs_spread_over_documents(tiny_model, tmp_path, capsys):
    rows = [{"id": r["id"], "doc_id": r["doc_id"], "text": r["text"]}
            for r in synthetic_records(64, seed=31, prefix="c")]
    rows.append(dict(rows[0], id="dup"))  # an exact duplicate of the first paragraph
    inp = write_lines(tmp_path / "corpus.jsonl", rows)
    done = write_lines(tmp_path / "done.jsonl", [rows[5]])
    out = tmp_path / "next.jsonl"
    assert main(["suggest", str(inp), "--model", str(tiny_model), "-n", "10", "-o", str(out),
                 "--exclude", str(done)]) == 0
    picked = read_jsonl(out)
    assert len(picked) == 10
    assert max(Counter(r["doc_id"] for r in picked).values()) <= 2
    assert len({r["doc_id"] for r in picked}) >= 5
    assert rows[5]["id"] not in {r["id"] for r in picked}
    keys = [near_duplicate_key(r["text"]) for r in picked]
    assert len(set(keys)) == len(keys)
    scores = [r["uncertainty"] for r in picked]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert set(picked[0]["uncertainty_detail"]["stance"]) == set(ACTORS)
    assert len({r["picked_for"] for r in picked}) > 1
    assert all(set(r["stance"]) == set(ACTORS) for r in picked)

    tasks = tmp_path / "next.json"
    assert main(["suggest", str(inp), "--model", str(tiny_model), "-n", "6", "-o", str(tasks), "--to", "labelstudio",
                 "--strategy", "margin"]) == 0
    ls = json.loads(tasks.read_text())
    assert len(ls) == 6 and all("uncertainty" in t["data"] and t["predictions"][0]["score"] is not None for t in ls)
    assert (tmp_path / "next.config.xml").exists()
