"""Paragraph text to model inputs: token windows and, per actor, the tokens that refer to it.

This module needs only ``tokenizers`` and ``numpy``, so the ONNX path can label without importing
torch or transformers. Training and both inference backends share it, so a paragraph is encoded
the same way everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .codebook import Codebook
from .text import find_references


@dataclass
class Window:
    item: int  # index of the paragraph this window belongs to
    ids: np.ndarray  # token ids with [CLS] ... [SEP]
    actor_mask: np.ndarray  # (n_actors, len(ids)) 1.0 where a token is part of a reference
    context: np.ndarray | None = None  # (n_actors, len(CONTEXT_FEATURES)) for models that use it


# What the stance head learns about the rest of the document, per actor. Real articles name an
# actor once and then say "he", "the president" or "the Kremlin leader" for paragraphs; these
# features cost no encoder pass, only the alias matcher on the paragraphs already being labelled.
CONTEXT_FEATURES = ("named_in_previous_paragraph", "named_earlier_in_document", "has_previous_paragraph")


def named_actors(text: str, codebook: Codebook) -> np.ndarray:
    """(n_actors,) bool: the actors the alias matcher finds in a (raw) paragraph."""
    return np.array([bool(spans) for spans in find_references(codebook.normalize(text), codebook).values()])


class DocumentContext:
    """Per actor, whether earlier paragraphs of the same document named it.

    Paragraphs must arrive in document order; a new ``doc_id`` starts a new document. The state
    carries from one call to the next (and through ``state()``/``from_state`` into a checkpoint),
    so a corpus labelled in chunks, or interrupted and resumed, gets the features it would get
    labelled whole. Without document ids every paragraph is a document of its own.
    """

    def __init__(self, n_actors: int):
        self.n_actors = n_actors
        self.doc_id: str | None = None
        self.previous = np.zeros(n_actors, dtype=bool)
        self.earlier = np.zeros(n_actors, dtype=bool)

    def features(self, named: list[np.ndarray], doc_ids) -> np.ndarray:
        """``named[i]``: (n_actors,) bool, the actors paragraph i names. Returns (n, n_actors, 3)."""
        out = np.zeros((len(named), self.n_actors, len(CONTEXT_FEATURES)), dtype=np.float32)
        for i, here in enumerate(named):
            doc = None if doc_ids is None else doc_ids[i]
            if doc is None or doc != self.doc_id:
                self.doc_id, self.previous[:], self.earlier[:] = doc, False, False
            else:
                out[i, :, 0] = self.previous
                out[i, :, 1] = self.earlier & ~self.previous
                out[i, :, 2] = 1.0
            self.earlier |= self.previous
            self.previous = np.asarray(here, dtype=bool).copy()
        return out

    def state(self) -> dict:
        return {"doc_id": self.doc_id, "previous": self.previous.astype(int).tolist(),
                "earlier": self.earlier.astype(int).tolist()}

    @classmethod
    def from_state(cls, n_actors: int, state: dict | None) -> "DocumentContext":
        ctx = cls(n_actors)
        if state:
            ctx.doc_id = state["doc_id"]
            ctx.previous = np.asarray(state["previous"], dtype=bool)
            ctx.earlier = np.asarray(state["earlier"], dtype=bool)
        return ctx


def special_ids(tokenizer) -> tuple[int, int, int]:
    """(start, end, padding) token ids of a base encoder's tokenizer, as its own post-processor and
    padding settings give them: [CLS], [SEP], [PAD] for BERT models; <s>, </s>, <pad> for MPNet.

    The probe switches the file's own padding and truncation off for a moment (a file padded to
    a fixed length would wrap the empty text in pads) and puts them back as they were."""
    padding, truncation = tokenizer.padding, tokenizer.truncation
    tokenizer.no_padding()
    tokenizer.no_truncation()
    try:
        ends = tokenizer.encode("", add_special_tokens=True).ids
    finally:
        if padding is not None:
            tokenizer.enable_padding(**padding)
        if truncation is not None:
            tokenizer.enable_truncation(**truncation)
    if len(ends) != 2:
        raise ValueError(f"the tokenizer wraps a text in {len(ends)} special tokens, not a start and an end")
    if padding is not None:
        pad = padding["pad_id"]
    else:
        vocab = tokenizer.get_vocab()
        pad = next((vocab[t] for t in ("[PAD]", "<pad>") if t in vocab), 0)
    return ends[0], ends[1], pad


class ParagraphEncoder:
    """Tokenises paragraphs into windows of at most ``max_length`` tokens.

    A paragraph longer than the window is cut into windows that overlap by ``overlap`` tokens;
    the caller aggregates the windows' predictions (see ``aggregate``).
    """

    def __init__(self, tokenizer_file: str | Path, codebook: Codebook, max_length: int = 256,
                 overlap: int = 64, context: bool = False):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.cls_id, self.sep_id, self.pad_id = special_ids(self.tokenizer)
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.codebook = codebook
        if max_length < 16:
            raise ValueError("max_length must be at least 16 tokens")
        self.max_length = max_length
        self.overlap = min(overlap, max_length // 2)
        self.context = context  # add document-context features (models trained with them)

    @classmethod
    def for_model(cls, config, codebook: Codebook) -> "ParagraphEncoder":
        """The encoder a model folder's ``ModelConfig`` was trained with: its tokenizer, window,
        overlap and whether it reads document context."""
        from .folder import tokenizer_file

        return cls(tokenizer_file(config), codebook, max_length=config.max_length, overlap=config.overlap,
                   context=bool(config.context_features))

    def encode(self, texts: list[str], max_windows: int | None = None, doc_ids=None,
               context: DocumentContext | None = None) -> list[Window]:
        """Windows for each text, in order; ``max_windows=1`` keeps only the first (training).
        Texts are read as the codebook's ``text_normalization`` says. With context features on,
        ``doc_ids`` (texts in document order) and ``context`` (state carried from earlier calls)
        give each paragraph what its document's earlier paragraphs named."""
        texts = [self.codebook.normalize(t) for t in texts]
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        n_actors = len(self.codebook.actors)
        body = self.max_length - 2
        step = body - self.overlap
        out: list[Window] = []
        named = []
        for item, (text, enc) in enumerate(zip(texts, encodings)):
            ids = np.asarray(enc.ids, dtype=np.int64)
            offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
            token_mask = np.zeros((n_actors, len(ids)), dtype=np.float32)
            references = list(find_references(text, self.codebook).values())
            named.append(np.array([bool(spans) for spans in references]))
            for a, spans in enumerate(references):
                for start, end in spans:
                    token_mask[a, (offsets[:, 0] < end) & (offsets[:, 1] > start)] = 1.0
            starts = list(range(0, max(len(ids) - self.overlap, 1), step)) or [0]
            if max_windows:
                starts = starts[:max_windows]
            for s in starts:
                piece = ids[s:s + body]
                mask = token_mask[:, s:s + body]
                full_ids = np.concatenate([[self.cls_id], piece, [self.sep_id]]).astype(np.int64)
                full_mask = np.zeros((n_actors, len(full_ids)), dtype=np.float32)
                full_mask[:, 1:1 + len(piece)] = mask
                out.append(Window(item, full_ids, full_mask))
        if self.context:
            features = (context or DocumentContext(n_actors)).features(named, doc_ids)
            for w in out:
                w.context = features[w.item]
        return out

    def collate(self, windows: list[Window]) -> dict[str, np.ndarray]:
        """Pad a batch of windows to its longest member (dynamic padding)."""
        width = max(len(w.ids) for w in windows)
        n_actors = windows[0].actor_mask.shape[0]
        input_ids = np.full((len(windows), width), self.pad_id, dtype=np.int64)
        attention = np.zeros((len(windows), width), dtype=np.int64)
        actor_mask = np.zeros((len(windows), n_actors, width), dtype=np.float32)
        for i, w in enumerate(windows):
            input_ids[i, :len(w.ids)] = w.ids
            attention[i, :len(w.ids)] = 1
            actor_mask[i, :, :len(w.ids)] = w.actor_mask
        batch = {"input_ids": input_ids, "attention_mask": attention, "actor_mask": actor_mask}
        if self.context:
            batch["context"] = np.stack([w.context for w in windows]).astype(np.float32)
        return batch


def length_sorted_batches(windows: list[Window], batch_size: int) -> list[list[int]]:
    """Indices of windows grouped into batches of similar length, longest first.

    Sorting by length before batching keeps padding small; callers put results back in order.
    """
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i].ids))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def aggregate(windows: list[Window], frame_probs: np.ndarray, stance_probs: np.ndarray,
              n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Combine window predictions into one per paragraph.

    Frames take the maximum over windows (a frame foregrounded in one part of a long paragraph
    is in the paragraph). Stance averages the windows that refer to the actor; where no window
    does, all windows are averaged. Returns (frame_probs, stance_probs, n_windows).
    """
    n_frames = frame_probs.shape[1] if frame_probs.ndim == 2 else 0
    n_actors, n_values = stance_probs.shape[1], stance_probs.shape[2]
    frames = np.zeros((n_items, n_frames), dtype=np.float32)
    stance_sum = np.zeros((n_items, n_actors, n_values), dtype=np.float64)
    stance_ref = np.zeros((n_items, n_actors, n_values), dtype=np.float64)
    n_ref = np.zeros((n_items, n_actors), dtype=np.float64)
    n_win = np.zeros(n_items, dtype=np.int64)
    for w, window in enumerate(windows):
        i = window.item
        if n_frames:
            frames[i] = np.maximum(frames[i], frame_probs[w])
        referred = window.actor_mask.sum(axis=1) > 0
        stance_sum[i] += stance_probs[w]
        stance_ref[i][referred] += stance_probs[w][referred]
        n_ref[i] += referred
        n_win[i] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_all = stance_sum / np.maximum(n_win, 1)[:, None, None]
        mean_ref = stance_ref / np.maximum(n_ref, 1)[:, :, None]
    stance = np.where((n_ref > 0)[:, :, None], mean_ref, mean_all).astype(np.float32)
    return frames, stance, n_win
