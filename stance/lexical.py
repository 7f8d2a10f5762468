"""The lexical side of the model: TF-IDF word and bigram features with logistic regressions.

Frames are signalled by words (pariah, Eurovision, Yalta, Russophobia) as much as by meaning, and
a sparse lexical model catches those cues from few examples where a small encoder needs many.
The model mixes its encoder's probabilities with these, with a weight per task chosen on dev
(0 switches the lexical side off). Its parameters are stored as safetensors and JSON, never
pickled, and features are computed here with the same rules scikit-learn's ``TfidfVectorizer``
uses (lower case, tokens of two or more word characters, unigrams and bigrams, sublinear term
frequency, idf, L2 norm), so labelling does not need scikit-learn.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from .codebook import Codebook

VOCAB_FILE = "lexical_vocab.json"
WEIGHTS_FILE = "lexical.safetensors"
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


class LexicalModel:
    def __init__(self, codebook: Codebook, vocabulary: dict[str, int], idf: np.ndarray,
                 frame_coef: np.ndarray, frame_intercept: np.ndarray,
                 stance_coef: np.ndarray, stance_intercept: np.ndarray):
        self.codebook = codebook
        self.vocabulary = vocabulary
        self.idf = idf.astype(np.float32)
        self.frame_coef = frame_coef.astype(np.float32)  # (F, V)
        self.frame_intercept = frame_intercept.astype(np.float32)  # (F,)
        self.stance_coef = stance_coef.astype(np.float32)  # (A, values, V)
        self.stance_intercept = stance_intercept.astype(np.float32)  # (A, values); -inf for unseen values

    # -- features -------------------------------------------------------------------------
    def features(self, texts: list[str]) -> np.ndarray:
        """Dense TF-IDF rows (n, V), L2-normalised, as TfidfVectorizer(ngram_range=(1, 2),
        sublinear_tf=True) would give with this vocabulary and idf."""
        X = np.zeros((len(texts), len(self.vocabulary)), dtype=np.float32)
        for i, text in enumerate(texts):
            counts: dict[int, int] = {}
            tokens = _TOKEN.findall(text.lower())
            grams = tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]
            for g in grams:
                j = self.vocabulary.get(g)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            if not counts:
                continue
            idx = np.fromiter(counts.keys(), dtype=np.int64)
            tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32))
            vals = tf * self.idf[idx]
            X[i, idx] = vals / math.sqrt(float((vals ** 2).sum()))
        return X

    def predict(self, texts: list[str], batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Frame probabilities (n, F) and stance probabilities (n, A, values)."""
        n_a, n_v = self.stance_intercept.shape
        frames = np.zeros((len(texts), len(self.frame_intercept)), dtype=np.float32)
        stance = np.zeros((len(texts), n_a, n_v), dtype=np.float32)
        coef = self.stance_coef.reshape(n_a * n_v, -1)
        for start in range(0, len(texts), batch_size):  # dense rows, so a bounded number at a time
            X = self.features(texts[start:start + batch_size])
            end = start + len(X)
            frames[start:end] = 1.0 / (1.0 + np.exp(-(X @ self.frame_coef.T + self.frame_intercept)))
            logits = (X @ coef.T).reshape(len(X), n_a, n_v) + self.stance_intercept
            logits -= logits.max(-1, keepdims=True)
            p = np.exp(logits)
            stance[start:end] = p / p.sum(-1, keepdims=True)
        return frames, stance

    # -- fitting ----------------------------------------------------------------------------
    @classmethod
    def fit(cls, texts: list[str], stance: list[dict[str, str]], frames: list[list[str]], codebook: Codebook,
            C: float = 4.0, seed: int = 0) -> "LexicalModel":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        X = vectorizer.fit_transform(texts)
        V = X.shape[1]
        values = codebook.value_ids
        frame_coef = np.zeros((len(codebook.frames), V))
        frame_intercept = np.zeros(len(codebook.frames))
        for k, f in enumerate(codebook.frame_ids):
            y = np.array([int(f in fs) for fs in frames])
            if len(set(y)) < 2:
                frame_intercept[k] = 20.0 if y[0] else -20.0
                continue
            lr = LogisticRegression(C=C, max_iter=2000, class_weight="balanced", random_state=seed).fit(X, y)
            frame_coef[k], frame_intercept[k] = lr.coef_[0], lr.intercept_[0]
        stance_coef = np.zeros((len(codebook.actors), len(values), V))
        stance_intercept = np.full((len(codebook.actors), len(values)), -1e4)
        for a, actor in enumerate(codebook.actor_ids):
            y = np.array([s[actor] for s in stance])
            seen = sorted(set(y), key=values.index)
            if len(seen) < 2:
                stance_intercept[a, values.index(seen[0])] = 0.0
                continue
            lr = LogisticRegression(C=C, max_iter=2000, class_weight="balanced", random_state=seed).fit(X, y)
            classes = list(lr.classes_)
            if len(classes) == 2:  # binary LR keeps one row: the second class against the first
                rows = {classes[1]: (lr.coef_[0], lr.intercept_[0]), classes[0]: (np.zeros(V), 0.0)}
            else:
                rows = {c: (lr.coef_[i], lr.intercept_[i]) for i, c in enumerate(classes)}
            for c, (coef, b) in rows.items():
                stance_coef[a, values.index(c)] = coef
                stance_intercept[a, values.index(c)] = b
        vocab = {t: int(i) for t, i in vectorizer.vocabulary_.items()}
        return cls(codebook, vocab, vectorizer.idf_, frame_coef, frame_intercept, stance_coef, stance_intercept)

    # -- storage ----------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save_file

        folder = Path(folder)
        terms = sorted(self.vocabulary, key=self.vocabulary.get)
        (folder / VOCAB_FILE).write_text(json.dumps(terms, ensure_ascii=False), encoding="utf-8")
        # fp16 halves the file; the mixing weight is tuned on these rounded values
        save_file({"idf": self.idf, "frame_coef": self.frame_coef.astype(np.float16),
                   "frame_intercept": self.frame_intercept,
                   "stance_coef": self.stance_coef.astype(np.float16),
                   "stance_intercept": self.stance_intercept}, str(folder / WEIGHTS_FILE))

    @classmethod
    def load(cls, folder: str | Path, codebook: Codebook) -> "LexicalModel | None":
        from safetensors.numpy import load_file

        folder = Path(folder)
        if not (folder / WEIGHTS_FILE).exists():
            return None
        terms = json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8"))
        w = load_file(str(folder / WEIGHTS_FILE))
        return cls(codebook, {t: i for i, t in enumerate(terms)}, w["idf"], w["frame_coef"].astype(np.float32),
                   w["frame_intercept"], w["stance_coef"].astype(np.float32), w["stance_intercept"])

    def rounded(self) -> "LexicalModel":
        """The model as it will be after save and load (fp16 weights), for tuning the mix."""
        return LexicalModel(self.codebook, self.vocabulary, self.idf,
                            self.frame_coef.astype(np.float16).astype(np.float32), self.frame_intercept,
                            self.stance_coef.astype(np.float16).astype(np.float32), self.stance_intercept)


def mix(deep: np.ndarray, lexical: np.ndarray, weight: float) -> np.ndarray:
    return ((1.0 - weight) * deep + weight * lexical).astype(np.float32)
