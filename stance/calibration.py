"""Activation ranges for the int8 ONNX backend, recorded once per model and kept in its folder.

The int8 graph quantises each MatMul's input with one dynamic scale per tensor. The inputs of the
feed-forward projections have a few channels far larger than the rest (the 4x-wide GELU output
read by the output projection; the layer-norm output read by the input projection), so that one
scale would clip them or crush the others. ``stance.inference`` smooths those inputs (SmoothQuant:
divide channel j by s_j, multiply row j of the weight by s_j), and s_j needs max|x_j| over real
text. This module records it: a forward pass of the torch model over up to ``MAX_TEXTS`` training
paragraphs, windowed and batched as labelling does, with hooks on every
``encoder.layer[i].intermediate`` (its output, already through the activation, and its dense
layer's input).

The ranges are saved as ``int8_calibration.safetensors`` (keys ``layer.<i>`` for the output
projections and ``layer.<i>.intermediate`` for the input projections, float32 vectors).
``train_to_folder`` writes it; ``record_activation_ranges(folder, texts)`` adds it to a folder
trained before it existed. A folder without it still quantises, the older way (see
``stance.inference.quantize_int8``); a file of format 1 has the output projections' ranges only.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .errors import StanceError

CALIBRATION_FILE = "int8_calibration.safetensors"
MAX_TEXTS = 1000
_FORMAT = "2"  # 2 adds the intermediate projections' ranges
_READABLE = ("1", "2")
KINDS = ("output", "intermediate")
_META_KEY = "int8_calibration"
_LAYER = re.compile(r"(?:^|\.)layer\.(\d+)\.intermediate$")


def calibration_texts(texts: list[str], max_texts: int = MAX_TEXTS) -> list[str]:
    """At most ``max_texts`` non-empty texts, evenly spaced through the list (deterministic, so
    a retrained folder gets the same file)."""
    texts = [t for t in texts if t and t.strip()]
    if len(texts) <= max_texts:
        return texts
    return [texts[i * len(texts) // max_texts] for i in range(max_texts)]


def activation_ranges(model, texts: list[str], batch_size: int = 32, which: str = "output") -> dict[int, np.ndarray]:
    """max|x_j| of the input x of every feed-forward projection of one kind, per layer, over ``texts``:
    ``which="output"`` the output projections (x: the GELU output), ``"intermediate"`` the input
    projections (x: the attention block's layer-norm output).

    Every position the batches hold counts, padding included: the int8 graph's dynamic scales
    see those positions too."""
    return _record(model, texts, batch_size)[_check_kind(which)]


def _check_kind(which: str) -> str:
    if which not in KINDS:
        raise ValueError(f"which must be one of {', '.join(KINDS)}, not {which!r}")
    return which


def _record(model, texts: list[str], batch_size: int) -> dict[str, dict[int, np.ndarray]]:
    """Both kinds of ranges from one pass over ``texts``."""
    import torch

    from .encoding import ParagraphEncoder
    from .inference import Predictor, TorchBackend

    if not texts:
        raise StanceError("activation ranges need at least one text")
    ranges: dict[str, dict[int, torch.Tensor]] = {k: {} for k in KINDS}
    handles = []

    def keep(kind, layer, x):
        m = x.detach().abs().flatten(0, -2).amax(0).float()
        seen = ranges[kind]
        seen[layer] = m if layer not in seen else torch.maximum(seen[layer], m)

    for name, module in model.encoder.named_modules():
        match = _LAYER.search(name)
        if match:
            layer = int(match.group(1))
            # the intermediate block's output is already through the activation: the output
            # projection's input; its dense layer's input is the intermediate projection's
            handles.append(module.register_forward_hook(
                lambda mod, inputs, output, layer=layer: keep("output", layer, output)))
            handles.append(module.dense.register_forward_pre_hook(
                lambda mod, inputs, layer=layer: keep("intermediate", layer, inputs[0])))
    if not handles:
        raise StanceError("the encoder has no '.layer.<i>.intermediate' modules to calibrate")
    # a model trained with document-context features needs them in its batches; they feed only the
    # stance head, so the encoder's activations do not depend on them (each text is its own document)
    encoder = ParagraphEncoder.for_model(model.config, model.codebook)
    training = model.training
    try:
        Predictor(encoder, TorchBackend(model), batch_size).predict(list(texts))
    finally:
        for h in handles:
            h.remove()
        model.train(training)
    return {kind: {layer: r[layer].numpy().astype(np.float32) for layer in sorted(r)} for kind, r in ranges.items()}


def _key(kind: str, layer: int) -> str:
    return f"layer.{layer}" if kind == "output" else f"layer.{layer}.{kind}"


def save_activation_ranges(ranges: dict[int, np.ndarray], path: str | Path, n_texts: int = 0,
                           intermediate: dict[int, np.ndarray] | None = None) -> Path:
    """Write the output projections' ranges (and, given, the intermediate projections')."""
    from safetensors.numpy import save

    path = Path(path)
    tensors = {_key(kind, i): np.ascontiguousarray(r, dtype=np.float32)
               for kind, rs in (("output", ranges), ("intermediate", intermediate or {})) for i, r in sorted(rs.items())}
    # one metadata key: safetensors writes several in a random order, and a retrain with the same
    # seed must give the same bytes
    about = {"format": _FORMAT, "n_texts": n_texts,
             "what": "max |input| of each FFN output projection (layer.<i>) and input projection "
                     "(layer.<i>.intermediate), per channel"}
    data = save(tensors, metadata={_META_KEY: json.dumps(about, sort_keys=True)})
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # a half-written file never looks finished
    return path


def _about(metadata: dict | None) -> dict:
    try:
        return json.loads((metadata or {}).get(_META_KEY, "{}"))
    except ValueError:
        return {}


def load_activation_ranges(path: str | Path, which: str = "output") -> dict[int, np.ndarray]:
    """One kind of ranges from a calibration file (see ``activation_ranges``); empty where the file
    has none of that kind."""
    return load_calibration(path)[_check_kind(which)]


def load_calibration(path: str | Path) -> dict[str, dict[int, np.ndarray]]:
    """Every kind of ranges in a calibration file, read once: ``{kind: {layer: max|x|}}``."""
    from safetensors import safe_open

    path = Path(path)
    out: dict[str, dict[int, np.ndarray]] = {kind: {} for kind in KINDS}
    try:
        with safe_open(str(path), framework="numpy") as f:
            if _about(f.metadata()).get("format") not in _READABLE:
                raise StanceError(f"{path}: not an int8 calibration file of format {_FORMAT}")
            for key in f.keys():
                match = re.fullmatch(r"layer\.(\d+)(?:\.(intermediate))?", key)
                if not match:
                    raise StanceError(f"{path}: unexpected key {key!r}")
                out[match.group(2) or "output"][int(match.group(1))] = f.get_tensor(key).astype(np.float32)
    except StanceError:
        raise
    except Exception as e:  # a truncated or foreign file
        raise StanceError(f"{path}: cannot read the int8 calibration file ({e}); delete it or record it "
                          "again with stance.calibration.record_activation_ranges") from e
    return out


def record_activation_ranges(model_or_folder, texts: list[str], folder: str | Path | None = None,
                             max_texts: int = MAX_TEXTS, batch_size: int = 32) -> Path:
    """Record the int8 calibration ranges and write ``int8_calibration.safetensors``.

    ``model_or_folder``: a model folder (loaded with torch; the file goes into it unless
    ``folder`` says otherwise) or an in-memory ``StanceModel`` (then ``folder`` is required).
    ``texts``: paragraphs like those the model will label, e.g. its training texts; at most
    ``max_texts`` of them, evenly spaced, are used. For an existing folder::

        import json
        from stance.calibration import record_activation_ranges
        texts = [json.loads(l)["text"] for l in open("seeds/corpus/train.jsonl") if l.strip()]
        record_activation_ranges("models/default", texts)

    The int8 ONNX cache of that folder is rebuilt on its next use (the file is part of its key).
    """
    if isinstance(model_or_folder, (str, Path)):
        from .model import StanceModel

        folder = Path(folder) if folder is not None else Path(model_or_folder)
        model = StanceModel.from_pretrained(model_or_folder)
    else:
        if folder is None:
            raise StanceError("record_activation_ranges needs a folder to write to when given a model")
        model, folder = model_or_folder, Path(folder)
    chosen = calibration_texts(list(texts), max_texts)
    ranges = _record(model, chosen, batch_size)
    return save_activation_ranges(ranges["output"], folder / CALIBRATION_FILE, n_texts=len(chosen),
                                  intermediate=ranges["intermediate"])
