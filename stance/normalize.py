"""Text normalisation a codebook can ask for, applied the same way in training and labelling.

``social`` is for short social-media posts (tweets, comments): HTML entities are unescaped,
links become ``http``, and hashtags and user handles become their words (``#StopHillary2016``
becomes ``Stop Hillary 2016``, ``@HillaryClinton`` becomes ``@Hillary Clinton``), so that a tag
or handle that names an actor is found as a reference and the encoder reads words it knows.
"""
from __future__ import annotations

import html
import re

NORMALIZATIONS = ("none", "social")

_URL = re.compile(r"https?://\S+|www\.\S+")
_HANDLE = re.compile(r"(?<![\w@])@(\w+)")
_HASHTAG = re.compile(r"(?<![\w#])#(\w+)")
_HASHTAG_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_SPACES = re.compile(r"[ \t]+")


def _hashtag_words(match: re.Match) -> str:
    tag = match.group(1)
    parts = _HASHTAG_PART.findall(tag)
    return " ".join(parts) if parts else tag


def normalize_social(text: str) -> str:
    text = html.unescape(text)
    text = _URL.sub("http", text)
    text = _HANDLE.sub(lambda m: "@" + _hashtag_words(m), text)
    text = _HASHTAG.sub(_hashtag_words, text)
    return _SPACES.sub(" ", text).strip()


def normalize(text: str, how: str) -> str:
    if how == "social":
        return normalize_social(text)
    return text
