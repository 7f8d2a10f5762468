"""Scoring a model folder or a predictions file against gold labels, by the codebook's rules."""
from __future__ import annotations

from pathlib import Path

from .codebook import Codebook
from .data import Record, read_records
from .metrics import score


def predict_records(model, records: list[Record], batch_size: int = 32, lexical=None) -> list[dict]:
    """Label records' texts with an in-memory torch model (and its lexical side, if any);
    predictions in the label format."""
    from .encoding import ParagraphEncoder
    from .inference import Predictor, TorchBackend, decide

    encoder = ParagraphEncoder.for_model(model.config, model.codebook)
    predictor = Predictor.for_model(encoder, TorchBackend(model), model.config, batch_size, lexical)
    probs = predictor.predict([r.text for r in records], doc_ids=[r.doc_id for r in records])
    stance, frames = decide(probs, model.codebook, model.config.thresholds)
    return [{"id": r.id, "doc_id": r.doc_id, "stance": s, "frames": f}
            for r, s, f in zip(records, stance, frames)]


def evaluate_model(folder: str | Path, data_paths, backend: str = "torch", n_boot: int = 1000,
                   seed: int = 0, codebook: Codebook | None = None) -> dict:
    from .labeler import Labeler

    labeler = Labeler.from_pretrained(folder, backend=backend, codebook=codebook)
    records = read_records(data_paths, labeler.codebook)
    pred = labeler.predict_records(records)
    return score([r.to_json() for r in records], pred, labeler.codebook, n_boot=n_boot, seed=seed)


def evaluate_predictions(pred_path, gold_paths, codebook: Codebook, n_boot: int = 1000,
                         seed: int = 0) -> dict:
    gold = read_records(gold_paths, codebook)
    pred = read_records(pred_path, codebook)
    return score([r.to_json() for r in gold], [p.to_json() for p in pred], codebook,
                 n_boot=n_boot, seed=seed)
