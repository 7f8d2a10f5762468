"""Batch labelling for notebooks and the command line: ``Labeler``.

``Labeler.from_pretrained(path)`` loads a model folder with one of three backends (``torch``,
``onnx``, ``onnx-int8``); ``label(texts)`` and ``label_frame(df)`` return pandas DataFrames with
flat columns (``stance_<actor>``, ``p_<actor>_<value>``, ``frame_<frame>``, ``p_frame_<frame>``),
``nested()`` turns a row into the codebook's JSONL label format plus scores.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .codebook import PROJECT_ROOT, Codebook
from .encoding import ParagraphEncoder
from .errors import StanceError
from .folder import read_model_folder
from .inference import BACKENDS, INT8_RECHECK, OnnxBackend, Predictor, Probabilities, decide, onnx_path
from .text import looks_english

DEFAULT_MODEL = PROJECT_ROOT / "models" / "default"


def _progress_bar(total: int, enabled: bool | None, desc: str):
    show = (sys.stderr.isatty() or _in_notebook()) if enabled is None else enabled
    if not show:  # a disabled notebook bar would still warn where ipywidgets is missing
        from tqdm import tqdm

        return tqdm(total=total, disable=True)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="para", leave=False)


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython

        shell = get_ipython()
        return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"
    except ImportError:
        return False


class Labeler:
    def __init__(self, folder: Path, codebook: Codebook, config, backend_name: str, backend,
                 batch_size: int = 32, progress: bool | None = None, recheck=None, recheck_margin: float = 0.0):
        self.folder = folder
        self.codebook = codebook
        self.config = config
        self.backend_name = backend_name
        self.encoder = ParagraphEncoder.for_model(config, codebook)
        from .lexical import LexicalModel

        self.predictor = Predictor.for_model(self.encoder, backend, config, batch_size,
                                             LexicalModel.load(folder, codebook), recheck, recheck_margin)
        # one dict: the frame thresholds decisions are made with are those the int8 recheck measures against
        self.thresholds = self.predictor.thresholds
        self.progress = progress

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, backend: str = "onnx", batch_size: int = 32,
                        codebook: Codebook | None = None, threads: int | None = None,
                        progress: bool | None = None, log=None, recheck: float | None = None) -> "Labeler":
        """Load a model folder (default: the shipped ``models/default``).

        ``backend``: ``onnx`` (default: ONNX Runtime fp32, the torch model's probabilities to about 1e-4,
        exported once and cached, and it starts without importing torch), ``onnx-int8`` (about twice as
        fast) or ``torch`` (the model as trained; what training and ``stance evaluate`` use).
        ``codebook``, when given, must match the model's; ``threads`` caps CPU threads.
        ``recheck`` (``onnx-int8`` only; default ``inference.INT8_RECHECK``, 0 turns it off): paragraphs
        with a decision closer than this to its boundary are run again in fp32, so that int8's rounding
        does not flip close calls; ``predictor.counts`` says how many were.
        """
        folder = Path(path) if path is not None else DEFAULT_MODEL
        if backend not in BACKENDS:
            raise StanceError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        config, saved_codebook = read_model_folder(folder, codebook)
        if recheck is not None and not 0 <= recheck < 1:
            raise StanceError(f"the int8 recheck margin (--int8-recheck) must be at least 0 and below 1, got {recheck}")
        fp32, margin = None, 0.0
        if backend == "torch":
            import torch

            from .inference import TorchBackend
            from .model import StanceModel

            if threads:
                torch.set_num_threads(threads)
            runner = TorchBackend(StanceModel.from_pretrained(folder))
        else:
            log = log or (lambda m: print(m, file=sys.stderr))
            runner = OnnxBackend(onnx_path(folder, backend, log=log), threads=threads)
            if backend == "onnx-int8":
                margin = INT8_RECHECK if recheck is None else recheck
                # cached beside the int8 file, which was quantised from it; opened at the first close call
                fp32 = lambda: OnnxBackend(onnx_path(folder, "onnx", log=log), threads=threads)  # noqa: E731
        return cls(folder, saved_codebook, config, backend, runner, batch_size, progress, fp32, margin)

    # -- core -------------------------------------------------------------------------------
    def predict(self, texts: list[str], progress: bool | None = None, doc_ids=None, context=None) -> Probabilities:
        """Probabilities for paragraphs. ``doc_ids`` (paragraphs in document order) lets a model
        trained with document context see what earlier paragraphs named; ``context`` (an
        ``encoding.DocumentContext``) carries that across calls for a corpus fed in chunks."""
        texts = list(texts)
        with _progress_bar(len(texts), self.progress if progress is None else progress, "labelling") as bar:
            # the bar counts windows, which equals paragraphs for all but the longest ones
            return self.predictor.predict(texts, progress=bar.update, doc_ids=doc_ids, context=context)

    def check(self, actors=None, frames=None) -> tuple[list[str], list[str]]:
        """Validate a choice of actors and frames against the model's codebook."""
        actors = self.codebook.check_actors(actors) if actors else self.codebook.actor_ids
        frames = self.codebook.check_frames(frames) if frames else self.codebook.frame_ids
        return actors, frames

    def rows(self, texts: list[str], progress: bool | None = None, doc_ids=None, context=None) -> list[dict]:
        """Flat label rows (one dict per text) without pandas; ``doc_ids`` and ``context`` as in
        ``predict``."""
        probs = self.predict(texts, progress, doc_ids, context)
        stance, frames = decide(probs, self.codebook, self.thresholds)
        cb = self.codebook
        out = []
        for i, text in enumerate(texts):
            row = {}
            for j, a in enumerate(cb.actor_ids):
                row[f"stance_{a}"] = stance[i][a]
                for k, v in enumerate(cb.value_ids):
                    row[f"p_{a}_{v}"] = round(float(probs.stance[i, j, k]), 4)
            for k, f in enumerate(cb.frame_ids):
                row[f"frame_{f}"] = int(f in frames[i])
                row[f"p_frame_{f}"] = round(float(probs.frames[i, k]), 4)
            row["windows"] = int(probs.windows[i])
            row["english"] = looks_english(text)
            out.append(row)
        return out

    def label(self, texts, ids=None, progress: bool | None = None, doc_ids=None):
        """Label paragraphs; a DataFrame with ``id``, ``text`` and the label columns.

        Give ``doc_ids`` when the texts are consecutive paragraphs of documents (a ``doc_id``
        column is added): a pronoun or title then resolves to an actor named earlier in the
        document. Without them each text is read on its own."""
        import pandas as pd

        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        _check_texts(texts)
        ids = list(ids) if ids is not None else list(range(len(texts)))
        if doc_ids is not None:
            doc_ids = list(doc_ids)
            if len(doc_ids) != len(texts):
                raise StanceError(f"{len(doc_ids)} doc_ids for {len(texts)} texts")
        df = pd.DataFrame(self.rows(texts, progress, doc_ids))
        df.insert(0, "text", texts)
        if doc_ids is not None:
            df.insert(0, "doc_id", doc_ids)
        df.insert(0, "id", ids)
        return df

    def label_frame(self, df, text_col: str = "text", progress: bool | None = None, doc_col: str | None = "doc_id"):
        """Label a DataFrame's text column; every other column is carried through unchanged.

        Rows are read as consecutive paragraphs of the documents named in ``doc_col`` where the
        frame has that column (see ``label``); ``doc_col=None`` reads each row on its own."""
        import pandas as pd

        if text_col not in df.columns:
            raise StanceError(f"no column {text_col!r}; the columns are: {', '.join(map(str, df.columns))}")
        texts = df[text_col].tolist()
        _check_texts(texts, what=f"column {text_col!r}, row")
        doc_ids = ([None if pd.isna(d) else str(d) for d in df[doc_col].tolist()]  # a missing id: its own document
                   if doc_col and doc_col in df.columns else None)
        labels = pd.DataFrame(self.rows([str(t) for t in texts], progress, doc_ids), index=df.index)
        clash = [c for c in labels.columns if c in df.columns]
        return pd.concat([df.drop(columns=clash), labels], axis=1)

    def predict_records(self, records) -> list[dict]:
        """Predictions for annotation records, in the codebook's label format."""
        probs = self.predict([r.text for r in records], doc_ids=[r.doc_id for r in records])
        stance, frames = decide(probs, self.codebook, self.thresholds)
        return [{"id": r.id, "doc_id": r.doc_id, "stance": s, "frames": f}
                for r, s, f in zip(records, stance, frames)]

    def nested(self, row: dict) -> dict:
        """A flat row as the codebook's JSONL label format plus scores; other keys carried."""
        return nested_row(row, self.codebook)


def nested_row(row: dict, cb: Codebook) -> dict:
    """``Labeler.nested`` without a loaded model: only the codebook decides the layout."""
    label_keys = {f"stance_{a}" for a in cb.actor_ids} | {f"frame_{f}" for f in cb.frame_ids}
    label_keys |= {f"p_{a}_{v}" for a in cb.actor_ids for v in cb.value_ids}
    label_keys |= {f"p_frame_{f}" for f in cb.frame_ids}
    out = {k: row[k] for k in ("id", "doc_id", "paragraph", "text") if k in row}
    out["stance"] = {a: row[f"stance_{a}"] for a in cb.actor_ids}
    out["stance_scores"] = {a: {v: row[f"p_{a}_{v}"] for v in cb.value_ids} for a in cb.actor_ids}
    out["frames"] = [f for f in cb.frame_ids if row[f"frame_{f}"]]
    out["frame_scores"] = {f: row[f"p_frame_{f}"] for f in cb.frame_ids}
    for k, v in row.items():
        if k not in out and k not in label_keys:
            out[k] = v
    return out


def _check_texts(texts, what: str = "text"):
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise StanceError(f"{what} {i}: empty or missing text ({t!r})")


__all__ = ["Labeler", "DEFAULT_MODEL"]
