"""Article text to paragraphs, boilerplate dropped; where each codebook actor is referred to.

The rules follow the codebook's unit: a paragraph is what the source separates with a blank line
(or a line break where it has no blank lines); headlines, bylines, newsletter, subscription and
donation lines are not paragraphs to label.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache

from .codebook import Actor, Codebook

# Lines that are furniture of a web page, not paragraphs of the article.
_BOILERPLATE = [
    r"\bsign up\b", r"\bsubscribe\b", r"\bnewsletter\b", r"\bdonat(e|ion)\b", r"\bsupport (our|us|independent)",
    r"\bfollow us\b", r"\bshare (this|on)\b", r"\bclick here\b", r"\ball rights reserved\b", r"^\s*©",
    r"\bcopyright\b", r"\bread more\b", r"\bread also\b", r"\brelated:", r"\badvertisement\b",
    r"\bbecome a (member|patron|subscriber)\b", r"\bcookie", r"\bprivacy policy\b",
    r"\bterms of (use|service)\b", r"\bsponsored\b",
    r"^\s*(this (article|story|piece|text) (was|has been) )?translated from\b",
]
_BOILERPLATE_RE = re.compile("|".join(_BOILERPLATE), re.IGNORECASE)
_BYLINE_RE = re.compile(
    r"^\s*(by\s+[A-Z][\w.'-]+(\s+[A-Z][\w.'-]+){0,3}(\s*(,|and|&)\s*[A-Z][\w.'-]+(\s+[A-Z][\w.'-]+){0,3})*"
    r"|(published|updated|posted)\b.*\d)\s*[.|,]?\s*([|,-].*)?$",
    re.IGNORECASE,
)
# wire credits: "(Reporting by Ann Lee in Kyiv; Additional reporting by Bo Ruiz; Editing by C. Osei)"
_NAME = r"(?-i:[A-Z])[\w.'-]+(\s+(?-i:[A-Z])[\w.'-]+){0,3}"
_CREDIT = (rf"(additional\s+)?(reporting|writing|editing)\s+by\s+{_NAME}(\s+in\s+{_NAME})?"
           rf"(\s*(,|and|&)\s*{_NAME}(\s+in\s+{_NAME})?)*")
_CREDIT_RE = re.compile(rf"^\s*\(?\s*{_CREDIT}(\s*;\s*{_CREDIT})*\s*;?\s*\)?\s*\.?\s*$", re.IGNORECASE)
_MARKDOWN_HEADING = re.compile(r"^\s*#{1,6}\s")
_TAG = re.compile(r"<[^>]+>")
_BLOCK_TAG = re.compile(r"</?(p|div|br|h[1-6]|li|ul|ol|section|article|blockquote|tr)\b[^>]*>",
                        re.IGNORECASE)
_SCRIPT = re.compile(r"<(script|style|nav|footer|header|aside)\b.*?</\1>", re.IGNORECASE | re.DOTALL)
# A boilerplate line is short; a long paragraph that happens to say "subscribe" is still text.
_MAX_BOILERPLATE_WORDS = 40


@dataclass
class Paragraph:
    index: int  # position among the kept paragraphs of the document, from 1
    text: str


@dataclass
class SplitResult:
    paragraphs: list[Paragraph]
    dropped: dict[str, int]  # reason -> count (headline, byline, boilerplate)


def html_to_text(raw: str) -> str:
    """Plain text of an HTML page with one blank line between block elements."""
    raw = _SCRIPT.sub(" ", raw)
    raw = _BLOCK_TAG.sub("\n\n", raw)
    raw = _TAG.sub(" ", raw)
    return html.unescape(raw)


def _blocks(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if re.search(r"\n\s*\n", text):
        blocks = re.split(r"\n\s*\n", text)
        # inside a block, single line breaks are wrapping
        return [re.sub(r"\s*\n\s*", " ", b).strip() for b in blocks]
    return [line.strip() for line in text.split("\n")]


def _looks_like_headline(block: str) -> bool:
    words = block.split()
    if not words or len(words) > 20:
        return False
    if _MARKDOWN_HEADING.match(block):
        return True
    # A headline has no closing sentence punctuation; a short sentence does.
    return not re.search(r"[.!?…\"”’)]$", block.strip())


def split_paragraphs(text: str, min_words: int = 4) -> SplitResult:
    """Split an article into the paragraphs the codebook labels, counting what was dropped."""
    dropped = {"headline": 0, "byline": 0, "boilerplate": 0}
    out: list[Paragraph] = []
    for block in _blocks(text):
        if not block:
            continue
        words = len(block.split())
        if (_BYLINE_RE.match(block) and words <= 15) or _CREDIT_RE.match(block):
            dropped["byline"] += 1
        elif _BOILERPLATE_RE.search(block) and words <= _MAX_BOILERPLATE_WORDS:
            dropped["boilerplate"] += 1
        elif _looks_like_headline(block) or words < min_words:
            dropped["headline"] += 1
        else:
            out.append(Paragraph(len(out) + 1, _MARKDOWN_HEADING.sub("", block).strip()))
    return SplitResult(out, dropped)


# -- references -------------------------------------------------------------------------------

_JOIN = object()  # words of an alias may be joined by spaces or hyphens


def _alias_units(alias: str) -> list:
    """An alias as a sequence of literal characters and word joins."""
    units = []
    for k, part in enumerate(p for p in re.split(r"[\s-]+", alias.strip()) if p):
        if k:
            units.append(_JOIN)
        units += list(part)
    return units


def _trie_pattern(aliases: list[str]) -> str:
    """One regex for many aliases, as a trie: alternatives share their prefixes, so matching
    costs little more for a hundred aliases than for one (a plain alternation is tried alias by
    alias at every word). At each node the longer continuation is tried first, so the longest
    alias wins, as it did when aliases were listed longest first."""
    trie: dict = {}
    for alias in aliases:
        node = trie
        for unit in _alias_units(alias):
            node = node.setdefault(unit, {})
        node[None] = {}

    def build(node: dict) -> str:
        branches = [(r"[\s-]+" if unit is _JOIN else re.escape(unit)) + build(child)
                    for unit, child in node.items() if unit is not None]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if None in node else body

    return build(trie)


def _alias_group(aliases: list[str]) -> str:
    # not inside a word or a hyphenated compound; a possessive 's may follow
    return rf"(?<![\w-])(?:{_trie_pattern(aliases)})(?:['’]s)?(?![\w-])"


@lru_cache(maxsize=64)
def _actor_regex(aliases: tuple[str, ...]) -> re.Pattern | None:
    aliases = sorted({a for a in aliases if a.strip()}, key=len, reverse=True)
    if not aliases:
        return None
    # Aliases written with a capital (names, "the US") match case-sensitively on their first
    # letter only through the text's own spelling; matching is case-insensitive except for
    # all-caps short forms, where "US" must not match "us".
    exact = [a for a in aliases if re.fullmatch(r"[A-Z0-9.]{2,5}", a.replace("the ", ""))]
    loose = [a for a in aliases if a not in exact]
    exact += ["The" + a[3:] for a in exact if a.startswith("the ")]  # "The EU said" opens a sentence
    parts = []
    if loose:
        parts.append("(?i:" + _alias_group(loose) + ")")
    if exact:
        parts.append(_alias_group(exact))
    return re.compile("|".join(parts))


def _actor_aliases(actor: Actor) -> tuple[str, ...]:
    return tuple(actor.aliases) + ((actor.name,) if actor.name else ())


def find_references(text: str, codebook: Codebook) -> dict[str, list[tuple[int, int]]]:
    """Character spans where each actor's name or an alias occurs (possibly none).

    Where aliases of two actors overlap, the longer one wins: "the Kremlin chief" is Putin, not
    also the Kremlin, and "the Trump administration" is the West, not Trump himself.
    """
    found = []
    for actor in codebook.actors:
        rx = _actor_regex(_actor_aliases(actor))
        if rx is not None:
            found += [(m.start(), m.end(), actor.id) for m in rx.finditer(text)]
    found.sort(key=lambda m: (-(m[1] - m[0]), m[0]))
    taken: list[tuple[int, int]] = []
    spans: dict[str, list[tuple[int, int]]] = {a: [] for a in codebook.actor_ids}
    for start, end, actor_id in found:
        if any(start < e and end > s for s, e in taken):
            continue
        taken.append((start, end))
        spans[actor_id].append((start, end))
    for v in spans.values():
        v.sort()
    return spans


# -- language -----------------------------------------------------------------------------------

_EN_WORDS = frozenset(
    "the of and to in a is that for on it with as was by at be this are from has have an not "
    "its his he said but or they will had were would their which been who more than after".split()
)


def looks_english(text: str) -> bool:
    """A cheap check that a paragraph is English: enough common English function words.

    Non-English text is flagged, not labelled silently, because the model has only seen English.
    """
    words = re.findall(r"[^\W\d_]+", text.lower())
    if len(words) < 6:
        return True  # too short to judge; do not flag
    latin = sum(1 for w in words if re.fullmatch(r"[a-z]+", w))
    if latin / len(words) < 0.6:
        return False
    hits = sum(1 for w in words if w in _EN_WORDS)
    return hits / len(words) >= 0.08
