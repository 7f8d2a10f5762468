from stance.text import find_references, looks_english, split_paragraphs

ARTICLE = """Kremlin says summit will go ahead

By Anna Petrova and John Smith

MOSCOW (Wire) - The Kremlin said on Monday that the summit would go ahead as planned, despite reports that several leaders would stay away.

Sign up for our morning newsletter.

Support independent journalism: donate today.

Mr Putin is expected to arrive on Thursday.
"""


def test_split_drops_headline_byline_and_boilerplate():
    result = split_paragraphs(ARTICLE)
    assert [p.text[:20] for p in result.paragraphs] == ["MOSCOW (Wire) - The ", "Mr Putin is expected"]
    assert [p.index for p in result.paragraphs] == [1, 2]
    assert result.dropped == {"headline": 1, "byline": 1, "boilerplate": 2}


def test_wire_credits_and_translation_notes_are_not_paragraphs():
    text = ("Kyiv said the strike hit a school on Tuesday, officials said.\n\n"
            "(Reporting by Daniel Harrow in Kyiv; Additional reporting by Ana Ruiz; Editing by Claire Osei)\n\n"
            "Reporting by Tom Lee; editing by Sam Roe\n\n"
            "This article was translated from Russian.\n\n"
            "Reporting by the ministry's own press office suggested the talks had gone well for Moscow.")
    result = split_paragraphs(text)
    assert [p.text[:9] for p in result.paragraphs] == ["Kyiv said", "Reporting"]
    assert result.dropped == {"headline": 0, "byline": 2, "boilerplate": 1}


def test_single_line_breaks_separate_paragraphs_when_there_are_no_blank_lines():
    text = "Trump met Zelensky in Washington on Friday.\nThe talks lasted two hours, officials said."
    assert len(split_paragraphs(text).paragraphs) == 2
    wrapped = "Trump met Zelensky in Washington\non Friday, aides said.\n\nThe talks lasted two hours, officials said."
    assert len(split_paragraphs(wrapped).paragraphs) == 2


def test_long_paragraph_mentioning_subscribers_is_kept():
    text = ("Russian state television told its subscribers " + "that the West was to blame for everything, " * 8).strip() + "."
    assert len(split_paragraphs(text).paragraphs) == 1


def test_references_find_aliases_spellings_and_possessives(codebook):
    text = ("Zelenskyy met Mr Putin's envoy in Kyiv; the Kremlin chief's aides and the US said the "
            "talks helped us all. Trump's team stayed home.")
    refs = find_references(text, codebook)
    spans = {a: [text[s:e] for s, e in v] for a, v in refs.items()}
    assert "Zelenskyy" in spans["ukraine"] and "Kyiv" in spans["ukraine"]
    assert spans["putin"] == ["Mr Putin's", "the Kremlin chief's"]
    assert spans["west"] == ["the US"]  # "us" in "helped us" is not the United States
    assert spans["trump"] == ["Trump's"]
    assert spans["russia"] == []  # "Kremlin chief" is Putin, not a separate mention of the state


def test_the_longer_alias_wins_where_actors_overlap(codebook):
    text = "The Trump administration and the Kremlin leader agreed; Trump himself said little."
    spans = {a: [text[s:e] for s, e in v] for a, v in find_references(text, codebook).items()}
    assert spans["west"] == ["The Trump administration"]
    assert spans["trump"] == ["Trump"]
    assert spans["putin"] == ["the Kremlin leader"] and spans["russia"] == []


def test_english_check():
    assert looks_english("The Kremlin said on Monday that the talks with Washington would go ahead as planned.")
    assert not looks_english("Le Kremlin a déclaré lundi que les pourparlers avec Washington auraient lieu comme prévu.")
    assert not looks_english("Кремль заявил в понедельник, что переговоры с Вашингтоном пройдут по плану.")
