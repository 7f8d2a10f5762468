"""The lexical side: features identical to scikit-learn's, storage without pickle, mixing."""
import numpy as np

from conftest import synthetic_records
from stance.lexical import LexicalModel, mix


def _fit(codebook, n=80):
    rows = synthetic_records(n, seed=4)
    return rows, LexicalModel.fit([r["text"] for r in rows], [r["stance"] for r in rows],
                                  [r["frames"] for r in rows], codebook)


def test_features_match_scikit_learn(codebook):
    from sklearn.feature_extraction.text import TfidfVectorizer

    rows, lex = _fit(codebook)
    texts = [r["text"] for r in rows[:20]] + ["Unseen words only: zzz qqq.", "Putin's Putin PUTIN, the West!"]
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, vocabulary=lex.vocabulary)
    vec.fit(texts)  # fixes the vocabulary; idf replaced below by the fitted one
    vec.idf_ = lex.idf.astype(np.float64)
    np.testing.assert_allclose(lex.features(texts), vec.transform(texts).toarray(), atol=1e-5)


def test_probabilities_and_round_trip(codebook, tmp_path):
    rows, lex = _fit(codebook)
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
