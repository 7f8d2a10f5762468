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


_WHITESPACE = re.compile(r"\s\s+")


def word_grams(text: str) -> list[str]:
    """Unigrams and bigrams as ``TfidfVectorizer(ngram_range=(1, 2))`` makes them."""
    tokens = _TOKEN.findall(text.lower())
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]


def _word_char_grams(word: str, low: int, high: int) -> list[str]:
    w = f" {word} "
    grams = []
    for n in range(low, high + 1):
        offset = 0
        grams.append(w[:n])
        while offset + n < len(w):
            offset += 1
            grams.append(w[offset:offset + n])
        if offset == 0:
            break
    return grams


def char_grams(text: str, low: int, high: int) -> list[str]:
    """Character n-grams inside word boundaries, as ``TfidfVectorizer(analyzer="char_wb")``
    makes them: each word padded with one space, a word shorter than n counted once."""
    return [g for w in _WHITESPACE.sub(" ", text.lower()).split() for g in _word_char_grams(w, low, high)]


class LexicalModel:
    """``blocks`` are (analyzer, vocabulary, idf): word 1-2-grams, and optionally character
    n-grams, each block L2-normalised on its own and the blocks side by side (as ``hstack`` of
    two vectorizers); the coefficients run over all blocks' columns."""

    def __init__(self, codebook: Codebook, blocks: list[tuple[str, dict[str, int], np.ndarray]],
                 frame_coef: np.ndarray, frame_intercept: np.ndarray,
                 stance_coef: np.ndarray, stance_intercept: np.ndarray):
        self.codebook = codebook
        self.blocks = [(kind, vocab, idf.astype(np.float32)) for kind, vocab, idf in blocks]
        self.frame_coef = frame_coef.astype(np.float32)  # (F, V)
        self.frame_intercept = frame_intercept.astype(np.float32)  # (F,)
        self.stance_coef = stance_coef.astype(np.float32)  # (A, values, V)
        self.stance_intercept = stance_intercept.astype(np.float32)  # (A, values); -inf for unseen values
        self._cache: dict[str, dict[str, list[int]]] = {}
        self._stacked: np.ndarray | None = None  # see _coef

    @property
    def n_features(self) -> int:
        return sum(len(vocab) for _, vocab, _ in self.blocks)

    # -- features -------------------------------------------------------------------------
    def sparse_features(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """TF-IDF rows in CSR form (indptr, column indices, values): sublinear term frequency,
        idf and a unit L2 norm per block, as the fitted ``TfidfVectorizer``s give with these
        vocabularies and idf."""
        indptr, columns, values = [0], [], []
        for text in texts:
            text = self.codebook.normalize(text)
            start, nnz = 0, indptr[-1]
            for kind, vocab, idf in self.blocks:
                if kind == "word":
                    idx = [j for j in map(vocab.get, word_grams(text)) if j is not None]
                else:
                    idx = self._char_indices(kind, vocab, text)
                if idx:
                    cols, counts = np.unique(np.asarray(idx, dtype=np.int64), return_counts=True)
                    vals = (1.0 + np.log(counts.astype(np.float32))) * idf[cols]
                    columns.append(start + cols)
                    values.append(vals / math.sqrt(float((vals ** 2).sum())))
                    nnz += len(cols)
                start += len(vocab)
            indptr.append(nnz)
        return (np.asarray(indptr, dtype=np.int64),
                np.concatenate(columns) if columns else np.zeros(0, np.int64),
                np.concatenate(values).astype(np.float32) if values else np.zeros(0, np.float32))

    def features(self, texts: list[str]) -> np.ndarray:
        """The same rows dense, (n, V)."""
        indptr, columns, values = self.sparse_features(texts)
        X = np.zeros((len(texts), self.n_features), dtype=np.float32)
        for i in range(len(texts)):
            X[i, columns[indptr[i]:indptr[i + 1]]] = values[indptr[i]:indptr[i + 1]]
        return X

    def _char_indices(self, kind: str, vocab: dict[str, int], text: str) -> list[int]:
        """Vocabulary columns of the text's character n-grams. Words recur, so each word's
        columns are computed once and kept (a bounded cache), which makes this several times
        faster than counting n-grams afresh."""
        cache = self._cache.setdefault(kind, {})
        if len(cache) > 200_000:
            cache.clear()
        low, high = _char_range(kind)
        out: list[int] = []
        for w in _WHITESPACE.sub(" ", text.lower()).split():
            cols = cache.get(w)
            if cols is None:
                cols = cache[w] = [j for j in map(vocab.get, _word_char_grams(w, low, high)) if j is not None]
            out += cols
        return out

    def predict(self, texts: list[str], batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Frame probabilities (n, F) and stance probabilities (n, A, values)."""
        n_a, n_v = self.stance_intercept.shape
        coef = self._coef()
        logits = np.zeros((len(texts), len(coef)), dtype=np.float32)
        for first in range(0, len(texts), batch_size):  # bounds the gathered coefficients' memory
            indptr, columns, values = self.sparse_features(texts[first:first + batch_size])
            # sparse rows times dense coefficients: each row sums the coefficient columns it has
            filled = np.flatnonzero(np.diff(indptr) > 0)
            if len(filled):
                products = coef[:, columns] * values  # (F + A*values, nnz)
                logits[first + filled] = np.add.reduceat(products, indptr[filled], axis=1).T
        n_f = len(self.frame_intercept)
        frames = 1.0 / (1.0 + np.exp(-(logits[:, :n_f] + self.frame_intercept)))
        stance = logits[:, n_f:].reshape(len(texts), n_a, n_v) + self.stance_intercept
        stance -= stance.max(-1, keepdims=True)
        p = np.exp(stance)
        return frames.astype(np.float32), (p / p.sum(-1, keepdims=True)).astype(np.float32)

    def _coef(self) -> np.ndarray:
        """Frame and stance coefficients stacked, (F + A*values, V), made once."""
        if self._stacked is None:
            n_a, n_v = self.stance_intercept.shape
            self._stacked = np.ascontiguousarray(
                np.concatenate([self.frame_coef, self.stance_coef.reshape(n_a * n_v, -1)]))
        return self._stacked

    # -- fitting ----------------------------------------------------------------------------
    @classmethod
    def fit(cls, texts: list[str], stance: list[dict[str, str]], frames: list[list[str]], codebook: Codebook,
            C: float = 4.0, seed: int = 0, char_ngrams: tuple[int, int] | None = None) -> "LexicalModel":
        """Fit on training texts. ``char_ngrams=(2, 5)`` adds character n-grams within words,
        which carry spellings, hashtags and word parts in short or noisy texts. An actor a record
        leaves out (partial annotation) is fitted on the records that annotate it."""
        from scipy.sparse import hstack
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        texts = [codebook.normalize(t) for t in texts]
        vectorizers = [("word", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True))]
        if char_ngrams:
            low, high = char_ngrams
            vectorizers.append((f"char_wb:{low}-{high}", TfidfVectorizer(
                analyzer="char_wb", ngram_range=(low, high), min_df=2, sublinear_tf=True)))
        X = hstack([v.fit_transform(texts) for _, v in vectorizers]).tocsr()
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
            rows = [i for i, s in enumerate(stance) if actor in s]
            y = np.array([stance[i][actor] for i in rows])
            seen = sorted(set(y), key=values.index)
            if not seen:  # annotated nowhere: no lexical opinion (uniform), the encoder decides
                stance_intercept[a] = 0.0
                continue
            if len(seen) < 2:
                stance_intercept[a, values.index(seen[0])] = 0.0
                continue
            lr = LogisticRegression(C=C, max_iter=2000, class_weight="balanced",
                                    random_state=seed).fit(X[rows], y)
            classes = list(lr.classes_)
            if len(classes) == 2:  # binary LR keeps one row: the second class against the first
                rows_ = {classes[1]: (lr.coef_[0], lr.intercept_[0]), classes[0]: (np.zeros(V), 0.0)}
            else:
                rows_ = {c: (lr.coef_[i], lr.intercept_[i]) for i, c in enumerate(classes)}
            for c, (coef, b) in rows_.items():
                stance_coef[a, values.index(c)] = coef
                stance_intercept[a, values.index(c)] = b
        blocks = [(kind, {t: int(i) for t, i in v.vocabulary_.items()}, v.idf_) for kind, v in vectorizers]
        return cls(codebook, blocks, frame_coef, frame_intercept, stance_coef, stance_intercept)

    # -- storage ----------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save_file

        folder = Path(folder)
        blocks = [{"analyzer": kind, "terms": sorted(vocab, key=vocab.get)} for kind, vocab, _ in self.blocks]
        (folder / VOCAB_FILE).write_text(json.dumps({"blocks": blocks}, ensure_ascii=False), encoding="utf-8")
        # fp16 halves the file; the mixing weight is tuned on these rounded values
        tensors = {f"idf_{k}": idf for k, (_, _, idf) in enumerate(self.blocks)}
        save_file({**tensors, "frame_coef": self.frame_coef.astype(np.float16),
                   "frame_intercept": self.frame_intercept,
                   "stance_coef": self.stance_coef.astype(np.float16),
                   "stance_intercept": self.stance_intercept}, str(folder / WEIGHTS_FILE))

    @classmethod
    def load(cls, folder: str | Path, codebook: Codebook) -> "LexicalModel | None":
        from safetensors.numpy import load_file

        folder = Path(folder)
        if not (folder / WEIGHTS_FILE).exists():
            return None
        saved = json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8"))
        w = load_file(str(folder / WEIGHTS_FILE))
        if isinstance(saved, list):  # written before character n-grams: one word block
            blocks = [("word", {t: i for i, t in enumerate(saved)}, w["idf"])]
        else:
            blocks = [(b["analyzer"], {t: i for i, t in enumerate(b["terms"])}, w[f"idf_{k}"])
                      for k, b in enumerate(saved["blocks"])]
        return cls(codebook, blocks, w["frame_coef"].astype(np.float32),
                   w["frame_intercept"], w["stance_coef"].astype(np.float32), w["stance_intercept"])

    def rounded(self) -> "LexicalModel":
        """The model as it will be after save and load (fp16 weights), for tuning the mix."""
        return LexicalModel(self.codebook, self.blocks,
                            self.frame_coef.astype(np.float16).astype(np.float32), self.frame_intercept,
                            self.stance_coef.astype(np.float16).astype(np.float32), self.stance_intercept)


def _char_range(kind: str) -> tuple[int, int]:
    low, high = kind.split(":")[1].split("-")
    return int(low), int(high)


def mix(deep: np.ndarray, lexical: np.ndarray, weight: float) -> np.ndarray:
    return ((1.0 - weight) * deep + weight * lexical).astype(np.float32)
