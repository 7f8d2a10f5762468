import pytest

from stance.codebook import Codebook, CodebookError


def test_default_codebook_matches_the_standard(codebook):
    assert codebook.actor_ids == ["putin", "trump", "russia", "ukraine", "west"]
    assert codebook.value_ids == ["none", "favor", "against", "neutral"]
    assert codebook.absent_value == "none"
    assert codebook.present_values == ["favor", "against", "neutral"]
    assert codebook.frame_ids == ["isolation", "resentment", "grand_bargain"]
    # every actor carries aliases for reference finding and a description for the stance head
    for actor in codebook.actors:
        assert actor.aliases and actor.description


def test_round_trip_through_yaml(codebook, tmp_path):
    codebook.save(tmp_path / "cb.yaml")
    again = Codebook.load(tmp_path / "cb.yaml")
    assert again == codebook
    assert again.fingerprint() == codebook.fingerprint()


def test_own_codebook_with_other_values_and_no_frames():
    cb = Codebook.from_dict({"name": "semeval", "stance_values": ["favor", "against", "none"],
                             "actors": [{"id": "atheism", "name": "Atheism"}]})
    assert cb.absent_value is None
    assert cb.present_values == ["favor", "against", "none"]
    assert cb.frame_ids == []
    assert cb.polar_values == ["favor", "against"]


@pytest.mark.parametrize("data, message", [
    ({"stance_values": ["a", "b"]}, "'actors' must be a non-empty list"),
    ({"stance_values": ["a"], "actors": [{"id": "x"}]}, "at least two stance values"),
    ({"stance_values": ["a", "b"], "absent_value": "z", "actors": [{"id": "x"}]}, "absent_value 'z'"),
    ({"stance_values": ["a", "b"], "actors": [{"id": "x"}, {"id": "x"}]}, "appears twice"),
    ({"stance_values": ["a", "b"], "actors": [{"id": "Bad Id"}]}, "lower-case"),
    ({"stance_values": ["a", "b"], "actors": [{"id": "x", "aliases": "X"}]}, "list of strings"),
])
def test_bad_codebooks_name_the_problem(data, message):
    with pytest.raises(CodebookError, match=message):
        Codebook.from_dict(data, source="my.yaml")


def test_unknown_actor_and_frame_are_clear_errors(codebook):
    with pytest.raises(CodebookError, match="unknown actor 'biden'.*putin, trump"):
        codebook.check_actors(["putin", "biden"])
    with pytest.raises(CodebookError, match="unknown frame 'war'"):
        codebook.check_frames(["war"])


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(CodebookError, match="not found"):
        Codebook.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("actors: [unclosed", encoding="utf-8")
    with pytest.raises(CodebookError, match="bad.yaml: not a readable YAML"):
        Codebook.load(bad)
