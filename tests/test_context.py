"""Document context: what earlier paragraphs of a document named, carried across chunks and runs."""
import json

import numpy as np
import pandas as pd
import pytest

from stance import Labeler
from stance.encoding import CONTEXT_FEATURES, DocumentContext, named_actors
from stance.labeling import run_label

DOC = [("a", "Vladimir Putin arrived in Beijing on Tuesday."),
       ("a", "He was greeted by NATO's critics."),
       ("a", "Nothing else was said."),
       ("a", "The talks ended late."),
       ("b", "Kyiv said the strike hit a school."),
       ("b", "Officials gave no figures.")]


def _features(codebook, doc, chunks=(6,)):
    ctx, out, start = DocumentContext(len(codebook.actors)), [], 0
    for size in chunks:
        part = doc[start:start + size]
        # the state goes through JSON, as it does through a checkpoint or a Ray chunk
        ctx = DocumentContext.from_state(len(codebook.actors), json.loads(json.dumps(ctx.state())))
        out.append(ctx.features([named_actors(t, codebook) for _, t in part], [d for d, _ in part]))
        start += size
    return np.concatenate(out)


def test_context_features_by_hand(codebook):
    f = _features(codebook, DOC)
    assert f.shape == (6, len(codebook.actors), len(CONTEXT_FEATURES))
    a = {x: i for i, x in enumerate(codebook.actor_ids)}
    prev, earlier, has_prev = 0, 1, 2
    assert not f[0].any()  # a document's first paragraph has no context
    assert f[1, a["putin"], prev] == 1 and f[1, a["putin"], earlier] == 0
    assert f[1, :, has_prev].tolist() == [1.0] * len(a)
    assert f[2, a["putin"], prev] == 0 and f[2, a["putin"], earlier] == 1
    assert f[2, a["west"], prev] == 1  # NATO, in paragraph 2
    assert f[3, a["west"], earlier] == 1 and f[3, a["putin"], earlier] == 1
    assert not f[4].any()  # a new document starts clean
    assert f[5, a["ukraine"], prev] == 1 and f[5, a["putin"], earlier] == 0


def test_context_is_the_same_fed_in_chunks(codebook):
    whole = _features(codebook, DOC)
    for chunks in [(1, 5), (2, 2, 2), (3, 3), (1,) * 6]:
        np.testing.assert_array_equal(_features(codebook, DOC, chunks), whole)


def test_without_document_ids_every_paragraph_stands_alone(codebook):
    ctx = DocumentContext(len(codebook.actors))
    assert not ctx.features([named_actors(t, codebook) for _, t in DOC], None).any()


def test_a_context_model_reads_earlier_paragraphs(tiny_model):
    labeler = Labeler.from_pretrained(tiny_model, progress=False)
    assert labeler.config.context_features == len(CONTEXT_FEATURES)
    texts = [t for _, t in DOC]
    alone = labeler.predict(texts)
    in_doc = labeler.predict(texts, doc_ids=[d for d, _ in DOC])
    # the first paragraph of each document has no context either way; the others differ
    np.testing.assert_allclose(in_doc.stance[[0, 4]], alone.stance[[0, 4]], atol=1e-6)
    assert np.abs(in_doc.stance[1] - alone.stance[1]).max() > 1e-5
    frame = labeler.label_frame(pd.DataFrame({"doc_id": [d for d, _ in DOC], "text": texts}))
    listed = labeler.label(texts, doc_ids=[d for d, _ in DOC])
    assert listed["doc_id"].tolist() == [d for d, _ in DOC]
    cols = [c for c in listed.columns if c.startswith("p_")]
    pd.testing.assert_frame_equal(frame[cols], listed[cols])
    np.testing.assert_allclose(listed[[f"p_putin_{v}" for v in labeler.codebook.value_ids]].to_numpy(),
                               in_doc.stance[:, 0], atol=1e-4)
    with pytest.raises(Exception, match="doc_ids for"):
        labeler.label(texts, doc_ids=["a"])


def test_chunk_size_does_not_change_labels(tiny_model, tmp_path):
    inp = tmp_path / "in.jsonl"
    rows = [{"id": f"r{i}", "doc_id": f"d{i // 4}", "text": t} for i, (_, t) in enumerate(DOC * 3)]
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    outs = []
    for size in (3, 512):
        out = tmp_path / f"out{size}.jsonl"
        run_label([str(inp)], str(out), model=tiny_model, chunk_size=size, progress=False, log=lambda m: None)
        outs.append(pd.read_json(out, lines=True).drop(columns=["source"], errors="ignore"))
    # batches differ with the chunk size, which can move a probability's last float bits
    pd.testing.assert_frame_equal(outs[0], outs[1], check_exact=False, atol=2e-4)


def _predictors(labeler):
    from stance.inference import Predictor

    p = labeler.predictor
    return [Predictor(p.encoder, p.backend, lexical=p.lexical, lexical_weights=p.lexical_weights, offtopic_none=on)
            for on in (False, True)]


def test_offtopic_paragraphs_get_none_for_every_actor(tiny_model):
    labeler = Labeler.from_pretrained(tiny_model, progress=False)
    cb = labeler.codebook
    absent = cb.value_ids.index(cb.absent_value)
    texts = [t for _, t in DOC] + ["Shoppers queued from dawn for Black Friday bargains at the mall."]
    docs = [d for d, _ in DOC] + ["c"]
    plain, ruled = (p.predict(texts, doc_ids=docs) for p in _predictors(labeler))
    # every paragraph but the last names an actor or follows one of its document that did
    np.testing.assert_array_equal(ruled.stance[:6], plain.stance[:6])
    assert (ruled.stance[6, :, absent] == 1).all() and ruled.stance[6].sum() == len(cb.actors)
    assert plain.stance[6, :, absent].min() < 0.999  # so the rule did something
    np.testing.assert_array_equal(ruled.frames, plain.frames)  # frames are not the rule's business
    # read without document ids, the paragraphs that only follow a name stand alone: off-topic
    plain, ruled = (p.predict(texts) for p in _predictors(labeler))
    assert (ruled.stance[[2, 3, 5, 6], :, absent] == 1).all()
    np.testing.assert_array_equal(ruled.stance[[0, 1, 4]], plain.stance[[0, 1, 4]])


def test_training_turns_the_offtopic_rule_on_only_where_dev_allows_it(codebook):
    from types import SimpleNamespace

    from stance.data import Record
    from stance.encoding import ParagraphEncoder
    from stance.folder import ModelConfig, tokenizer_file
    from stance.inference import Probabilities
    from stance.train import TrainConfig, _choose_offtopic_rule

    actors, values = codebook.actor_ids, codebook.value_ids
    texts = ["Putin attacked NATO again.", "Shoppers queued at the mall.", "The country's theatres are full."]
    encoder = ParagraphEncoder(tokenizer_file(ModelConfig()), codebook, context=True)
    # the model says "against" for every actor everywhere
    stance = np.zeros((3, len(actors), len(values)), np.float32)
    stance[:, :, values.index("against")] = 1.0
    probs = Probabilities(np.zeros((3, len(codebook.frames)), np.float32), stance, np.ones(3, np.int64))

    def choose(gold_last):
        gold = [{a: "against" if a in ("putin", "west") else "none" for a in actors},
                {a: "none" for a in actors}, {a: gold_last if a == "russia" else "none" for a in actors}]
        records = [Record(f"r{i}", f"d{i}", t, g, []) for i, (t, g) in enumerate(zip(texts, gold))]
        model = SimpleNamespace(config=ModelConfig())
        _choose_offtopic_rule(model, encoder, records, probs, codebook, TrainConfig(), log=lambda m: None)
        return model.config.offtopic_none

    assert choose("none") is True  # the unnamed paragraphs refer to nobody: the rule only helps
    assert choose("against") is False  # an unnamed reference the rule would erase
