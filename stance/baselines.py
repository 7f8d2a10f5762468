"""Baselines in the same harness as the model: majority class, a codebook keyword lexicon,
and TF-IDF + logistic regression. Each has ``fit(records)`` and ``predict(texts)`` returning
label records, so ``metrics.score`` treats them exactly like the model.
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np

from .codebook import Codebook
from .data import Record
from .text import find_references

_STOP = frozenset(
    "the a an of to in on for and or with as by at from that this is are be it its their his her "
    "into out about over than whether one such when which who has have had not no more most other "
    "being been was were would could should may might can also any all some both each every "
    "paragraph actor text".split()
)


def _predictions(ids, stance, frames):
    return [{"id": i, "stance": s, "frames": f} for i, s, f in zip(ids, stance, frames)]


class MajorityBaseline:
    """Each actor's most frequent stance value and each frame's most frequent presence."""

    name = "majority"

    def __init__(self, codebook: Codebook):
        self.codebook = codebook

    def fit(self, records: list[Record]) -> "MajorityBaseline":
        self.stance = {a: _most_common([r.stance[a] for r in records if a in r.stance], self.codebook)
                       for a in self.codebook.actor_ids}
        self.frames = [f for f in self.codebook.frame_ids
                       if sum(f in r.frames for r in records) * 2 > len(records)]
        return self

    def predict(self, texts: list[str], ids=None) -> list[dict]:
        ids = ids or list(range(len(texts)))
        return _predictions(ids, [dict(self.stance) for _ in texts], [list(self.frames) for _ in texts])


def _most_common(values: list[str], codebook: Codebook) -> str:
    """The commonest value; an actor no record annotates gets the absent (or first) value."""
    if not values:
        return codebook.absent_value or codebook.value_ids[0]
    return Counter(values).most_common(1)[0][0]


def _cue_words(phrases) -> set[str]:
    words = set()
    for p in phrases:
        for w in re.findall(r"[a-z][a-z'-]{3,}", p.lower()):
            if w not in _STOP:
                words.add(w[:6])  # a crude stem: "ostracised" and "ostracism" share "ostrac"
    return words


class LexiconBaseline:
    """Keywords from the codebook itself: actor aliases for references, each frame's definition
    and signals for frames, and the stance values' definitions for favor/against cues."""

    name = "lexicon"

    def __init__(self, codebook: Codebook, min_frame_hits: int = 2):
        self.codebook = codebook
        self.min_frame_hits = min_frame_hits
        self.frame_cues = {f.id: _cue_words([f.name, f.definition, *f.signals]) for f in codebook.frames}
        self.value_cues = {v.id: _cue_words([v.definition]) for v in codebook.stance_values}

    def fit(self, records: list[Record]) -> "LexiconBaseline":
        # Nothing to learn but the fallback for a referred actor: the commonest present value.
        present = Counter(r.stance[a] for r in records for a in self.codebook.actor_ids
                          if r.stance.get(a) in self.codebook.present_values)
        self.fallback = present.most_common(1)[0][0] if present else self.codebook.value_ids[0]
        return self

    def predict(self, texts: list[str], ids=None) -> list[dict]:
        ids = ids or list(range(len(texts)))
        cb = self.codebook
        stance_out, frames_out = [], []
        for text in texts:
            stems = [w[:6] for w in re.findall(r"[a-z][a-z'-]{3,}", text.lower())]
            frames_out.append([f for f, cues in self.frame_cues.items()
                               if sum(s in cues for s in stems) >= self.min_frame_hits])
            refs = find_references(cb.normalize(text), cb)
            stance = {}
            for a in cb.actor_ids:
                if cb.absent_value and not refs[a]:
                    stance[a] = cb.absent_value
                    continue
                hits = {v: sum(s in cues for s in stems) for v, cues in self.value_cues.items()
                        if v in ("favor", "against")}
                top = max(hits.items(), key=lambda kv: kv[1]) if hits else (None, 0)
                stance[a] = top[0] if top[1] > 0 and list(hits.values()).count(top[1]) == 1 else self.fallback
            stance_out.append(stance)
        return _predictions(ids, stance_out, frames_out)


class TfidfBaseline:
    """Word 1-2-gram TF-IDF with one logistic regression per frame and per actor (fitted on the
    records that annotate the actor), on the text as the codebook's normalisation gives it."""

    name = "tfidf_lr"

    def __init__(self, codebook: Codebook, C: float = 4.0, seed: int = 0):
        self.codebook = codebook
        self.C = C
        self.seed = seed

    def fit(self, records: list[Record]) -> "TfidfBaseline":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        texts = [self.codebook.normalize(r.text) for r in records]
        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        X = self.vectorizer.fit_transform(texts)
        self.frame_models, self.stance_models = {}, {}
        for f in self.codebook.frame_ids:
            y = np.array([int(f in r.frames) for r in records])
            self.frame_models[f] = (LogisticRegression(C=self.C, max_iter=2000, class_weight="balanced",
                                                       random_state=self.seed).fit(X, y)
                                    if len(set(y)) > 1 else int(y[0]))
        for a in self.codebook.actor_ids:
            rows = [i for i, r in enumerate(records) if a in r.stance]
            y = np.array([records[i].stance[a] for i in rows])
            self.stance_models[a] = (LogisticRegression(C=self.C, max_iter=2000, class_weight="balanced",
                                                        random_state=self.seed).fit(X[rows], y)
                                     if len(set(y)) > 1 else _most_common(list(y), self.codebook))
        return self

    def predict(self, texts: list[str], ids=None) -> list[dict]:
        ids = ids or list(range(len(texts)))
        X = self.vectorizer.transform([self.codebook.normalize(t) for t in texts])
        frames_on = {f: (m.predict(X) if not isinstance(m, int) else np.full(len(texts), m))
                     for f, m in self.frame_models.items()}
        stance_by_actor = {a: (m.predict(X) if not isinstance(m, str) else np.full(len(texts), m))
                           for a, m in self.stance_models.items()}
        stance = [{a: str(stance_by_actor[a][i]) for a in self.codebook.actor_ids} for i in range(len(texts))]
        frames = [[f for f in self.codebook.frame_ids if frames_on[f][i]] for i in range(len(texts))]
        return _predictions(ids, stance, frames)


BASELINES = {"majority": MajorityBaseline, "lexicon": LexiconBaseline, "tfidf_lr": TfidfBaseline}


def fit_baselines(train: list[Record], codebook: Codebook) -> dict[str, object]:
    """Every baseline fitted on ``train``; name -> fitted baseline."""
    return {name: cls(codebook).fit(train) for name, cls in BASELINES.items()}


def run_baselines(train: list[Record], test: list[Record], codebook: Codebook, n_boot: int = 1000,
                  seed: int = 0, fitted: dict[str, object] | None = None) -> dict[str, dict]:
    """Score every baseline on ``test``, fitted on ``train`` (or ``fitted``, from ``fit_baselines``
    on the same training records, to score several splits with one fit); name -> score dict."""
    from .metrics import score

    gold = [r.to_json() for r in test]
    fitted = fitted if fitted is not None else fit_baselines(train, codebook)
    return {name: score(gold, model.predict([r.text for r in test], ids=[r.id for r in test]), codebook,
                        n_boot=n_boot, seed=seed)
            for name, model in fitted.items()}
