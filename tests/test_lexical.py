"""The lexical side: features identical to scikit-learn's, storage without pickle, mixing."""
import numpy as np

from conftest import synthetic_records
from stance.lexical import LexicalModel, mix


def _fit(codebook, n=80, **kw):
    rows = synthetic_records(n, seed=4)
    return rows, LexicalModel.fit([r["text"] for r in rows], [r["stance"] for r in rows],
                                  [r["frames"] for r in rows], codebook, **kw)


def _sklearn_block(kind, vocab, idf, texts):
    from sklearn.feature_extraction.text import TfidfVectorizer

    if kind == "word":
        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, vocabulary=vocab)
    else:
        low, high = map(int, kind.split(":")[1].split("-"))
        vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(low, high), sublinear_tf=True, vocabulary=vocab)
    vec.fit(texts)  # fixes the vocabulary; idf replaced below by the fitted one
    vec.idf_ = idf.astype(np.float64)
    return vec.transform(texts).toarray()


def test_features_match_scikit_learn(codebook):
    rows, lex = _fit(codebook, char_ngrams=(2, 5))
    assert [kind for kind, _, _ in lex.blocks] == ["word", "char_wb:2-5"]
    texts = [r["text"] for r in rows[:20]] + ["Unseen words only: zzz qqq.", "Putin's Putin PUTIN, the West!",
                                              "a  I x\tyz  tabs\nand lines"]
    expected = np.hstack([_sklearn_block(kind, vocab, idf, texts) for kind, vocab, idf in lex.blocks])
    np.testing.assert_allclose(lex.features(texts), expected, atol=1e-5)


def test_sparse_prediction_equals_the_dense_product(codebook):
    rows, lex = _fit(codebook, char_ngrams=(2, 5))
    texts = [r["text"] for r in rows[:30]] + ["", "zzz qqq", "Putin's Putin PUTIN, the West!"]
    X = lex.features(texts)
    frames = 1.0 / (1.0 + np.exp(-(X @ lex.frame_coef.T + lex.frame_intercept)))
    n_a, n_v = lex.stance_intercept.shape
    logits = (X @ lex.stance_coef.reshape(n_a * n_v, -1).T).reshape(len(texts), n_a, n_v) + lex.stance_intercept
    stance = np.exp(logits - logits.max(-1, keepdims=True))
    stance /= stance.sum(-1, keepdims=True)
    for batch_size in (4, 256):  # batches that cut through the texts, and one batch
        f, s = lex.predict(texts, batch_size=batch_size)
        np.testing.assert_allclose(f, frames, atol=1e-5)
        np.testing.assert_allclose(s, stance, atol=1e-5)


def _round_trip(codebook, tmp_path, **kw):
    rows, lex = _fit(codebook, **kw)
    texts = [r["text"] for r in rows[:10]]
    frames, stance = lex.predict(texts)
    assert frames.shape == (10, 3) and stance.shape == (10, 5, 4)
    np.testing.assert_allclose(stance.sum(-1), 1.0, atol=1e-5)
    lex.save(tmp_path)
    assert not list(tmp_path.glob("*.pkl"))
    again = LexicalModel.load(tmp_path, codebook)
    f2, s2 = again.predict(texts)
    f1, s1 = lex.rounded().predict(texts)
    np.testing.assert_allclose(f1, f2, atol=1e-6)
    np.testing.assert_allclose(s1, s2, atol=1e-6)
    # the training paragraphs' labels are mostly recovered from words alone
    best = stance.argmax(-1)
    gold = np.array([[codebook.value_ids.index(r["stance"][a]) for a in codebook.actor_ids] for r in rows[:10]])
    assert (best == gold).mean() > 0.8


def test_probabilities_and_round_trip(codebook, tmp_path):
    _round_trip(codebook, tmp_path)


def test_round_trip_with_character_ngrams(codebook, tmp_path):
    _round_trip(codebook, tmp_path, char_ngrams=(3, 4))


def test_loads_a_folder_written_before_blocks(codebook, tmp_path):
    """Models saved with one word vocabulary (a JSON list and ``idf``) still load and agree."""
    import json

    from safetensors.numpy import load_file, save_file

    rows, lex = _fit(codebook)
    lex.save(tmp_path)
    saved = json.loads((tmp_path / "lexical_vocab.json").read_text())
    (tmp_path / "lexical_vocab.json").write_text(json.dumps(saved["blocks"][0]["terms"]))
    w = load_file(str(tmp_path / "lexical.safetensors"))
    w["idf"] = w.pop("idf_0")
    save_file(w, str(tmp_path / "lexical.safetensors"))
    texts = [r["text"] for r in rows[:5]]
    np.testing.assert_allclose(LexicalModel.load(tmp_path, codebook).predict(texts)[1],
                               lex.rounded().predict(texts)[1], atol=1e-6)


def test_partial_annotation_fits_each_actor_on_its_own_records(codebook):
    """With a record leaving an actor out, that actor is fitted on the others only."""
    import dataclasses

    partial = dataclasses.replace(codebook, annotation="partial")
    rows = synthetic_records(80, seed=4)
    stance = [dict(r["stance"]) for r in rows]
    for s in stance[::2]:
        s.pop("putin")  # half the records do not annotate putin
    for s in stance[1::2]:
        s["putin"] = "favor"  # ...and the others all say favor: the only value putin has seen
    for s in stance:
        s.pop("trump", None)  # trump annotated nowhere
    lex = LexicalModel.fit([r["text"] for r in rows], stance, [r["frames"] for r in rows], partial)
    p = lex.predict([r["text"] for r in rows[:6]])[1]
    assert (p[:, 0].argmax(-1) == partial.value_ids.index("favor")).all()
    # no opinion on an actor no record annotates: mixing it in leaves the encoder's choice alone
    np.testing.assert_allclose(p[:, 1], 1.0 / len(partial.value_ids), atol=1e-6)


def test_mix_weights():
    a, b = np.array([0.2, 0.8]), np.array([0.6, 0.4])
    np.testing.assert_allclose(mix(a, b, 0.0), a)
    np.testing.assert_allclose(mix(a, b, 0.5), [0.4, 0.6])


def test_trained_folder_records_its_mix(tiny_model):
    import json

    config = json.loads((tiny_model / "config.json").read_text())
    weights = config["lexical_weights"]
    assert set(weights) == {"frames", "stance"}
    has_files = (tiny_model / "lexical.safetensors").exists()
    assert has_files == bool(weights["frames"] or weights["stance"])
