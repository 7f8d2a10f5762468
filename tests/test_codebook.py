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


def test_partial_annotation_and_text_normalization_options(tmp_path):
    base = {"name": "semeval", "stance_values": ["favor", "against", "none"], "actors": [{"id": "t"}]}
    cb = Codebook.from_dict(base)
    assert cb.annotation == "complete" and not cb.partial and cb.text_normalization == "none"
    social = Codebook.from_dict({**base, "annotation": "partial", "text_normalization": "social"})
    assert social.partial
    assert social.normalize("#StopHillary2016 @HillaryClinton http://t.co/x &amp; more") == \
        "Stop Hillary 2016 @Hillary Clinton http & more"
    assert cb.normalize("#StopHillary2016") == "#StopHillary2016"
    # the model reads normalised text, so a codebook that normalises differently does not match
    assert social.fingerprint() != cb.fingerprint()
    social.save(tmp_path / "c.yaml")
    again = Codebook.load(tmp_path / "c.yaml")
    assert again.partial and again.text_normalization == "social" and again.fingerprint() == social.fingerprint()
    with pytest.raises(CodebookError, match="annotation must be"):
        Codebook.from_dict({**base, "annotation": "some"})
    with pytest.raises(CodebookError, match="text_normalization must be one of"):
        Codebook.from_dict({**base, "text_normalization": "tweets"})


def test_social_normalization_finds_references_in_tags_and_handles():
    from stance.text import find_references

    cb = Codebook.from_dict({"name": "x", "stance_values": ["favor", "against", "none"],
                             "text_normalization": "social",
                             "actors": [{"id": "hillary", "aliases": ["Hillary", "Clinton"]}]})
    for text in ["#StopHillary now", "@HillaryClinton said", "vote #Hillary2016"]:
        assert find_references(cb.normalize(text), cb)["hillary"], text
    assert not find_references(cb.normalize("email me at hillaryfan@example.com"), cb)["hillary"]
