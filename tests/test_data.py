import json

import pytest

from stance.cli import main
from stance.codebook import Codebook
from stance.data import ValidationError, read_records, split_by_document, validate_file

GOOD = {"id": "d1-p1", "doc_id": "d1", "text": "Putin spoke.", "frames": ["isolation"],
        "stance": {"putin": "neutral", "trump": "none", "russia": "none", "ukraine": "none", "west": "none"}}


def _line(**changes):
    row = json.loads(json.dumps(GOOD))
    for k, v in changes.items():
        if v is None:
            row.pop(k, None)
        else:
            row[k] = v
    return json.dumps(row)


def test_every_problem_is_reported_with_file_and_line(tmp_path, codebook):
    lines = [
        _line(),
        "{not json",
        _line(id="x2", stance={**GOOD["stance"], "biden": "favor"}),
        _line(id="x3", stance={**GOOD["stance"], "putin": "love"}),
        _line(id="x4", stance={k: v for k, v in GOOD["stance"].items() if k != "west"}),
        _line(id="x5", frames=["war"]),
        _line(),  # duplicate id d1-p1
        _line(id="x7", text="   "),
    ]
    path = tmp_path / "ann.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    records, problems = validate_file(path, codebook)
    assert [r.id for r in records] == ["d1-p1"]
    expected = [
        (2, "bad JSON"), (3, "unknown actor 'biden'"), (4, "illegal stance value 'love' for actor 'putin'"),
        (5, "missing actor 'west'"), (6, "unknown frame 'war'"), (7, "duplicate id 'd1-p1' (first at line 1)"),
        (8, "empty text"),
    ]
    assert len(problems) == len(expected)
    for (line, text), problem in zip(expected, problems):
        assert problem.startswith(f"{path}:{line}: ")
        assert text in problem


def test_validate_command_exit_codes(tmp_path, codebook, capsys):
    good = tmp_path / "good.jsonl"
    good.write_text(_line() + "\n", encoding="utf-8")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(_line(frames=["war"]) + "\n", encoding="utf-8")
    assert main(["validate", str(good)]) == 0
    assert "OK, 1 paragraphs" in capsys.readouterr().out
    assert main(["validate", str(bad)]) == 1
    assert f"{bad}:1: unknown frame 'war'" in capsys.readouterr().err


def test_empty_and_non_utf8_files(tmp_path, codebook):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    assert validate_file(empty, codebook)[1] == [f"{empty}: the file is empty"]
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes((_line() + "\n").encode() + b'{"id": "caf\xe9"}\n')
    assert validate_file(latin, codebook)[1][0].startswith(f"{latin}:2: not UTF-8")


def test_read_records_raises_with_all_problems(tmp_path, codebook):
    path = tmp_path / "a.jsonl"
    path.write_text(_line(frames=["war"]) + "\n" + _line(id="z", stance={}) + "\n", encoding="utf-8")
    with pytest.raises(ValidationError) as err:
        read_records(path, codebook)
    assert len(err.value.problems) == 6  # one unknown frame, five missing actors
    assert f"{path}:2: missing actor 'putin'" in str(err.value)


def test_split_keeps_documents_whole(codebook):
    from stance.data import Record

    records = [Record(f"d{d}-p{p}", f"d{d}", "t", dict(GOOD["stance"]), []) for d in range(40) for p in range(d % 5 + 1)]
    train, dev, test = split_by_document(records, (0.7, 0.15, 0.15), seed=3)
    docs = [{r.doc_id for r in part} for part in (train, dev, test)]
    assert not (docs[0] & docs[1]) and not (docs[0] & docs[2]) and not (docs[1] & docs[2])
    assert len(train) + len(dev) + len(test) == len(records)
    assert 0.6 < len(train) / len(records) < 0.8


def test_partial_annotation_allows_actors_to_be_left_out(tmp_path):
    """A codebook with ``annotation: partial`` accepts a record that leaves an actor out or null;
    a complete one reports it, and an illegal value is an error either way."""
    base = {"name": "p", "stance_values": ["favor", "against", "none"], "actors": [{"id": "a"}, {"id": "b"}]}
    partial = Codebook.from_dict({**base, "annotation": "partial"})
    complete = Codebook.from_dict(base)
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "1", "text": "x y", "stance": {"a": "favor"}}\n'
                    '{"id": "2", "text": "x y", "stance": {"a": null, "b": "none"}}\n'
                    '{"id": "3", "text": "x y", "stance": {"b": "maybe"}}\n')
    records, problems = validate_file(path, partial)
    assert [r.stance for r in records] == [{"a": "favor"}, {"b": "none"}]
    assert problems == [f"{path}:3: illegal stance value 'maybe' for actor 'b' (allowed: favor, against, none)"]
    _, problems = validate_file(path, complete)
    assert f"{path}:1: missing actor 'b' in 'stance'" in problems
