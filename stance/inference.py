"""Paragraphs to probabilities, with a PyTorch or an ONNX Runtime backend.

Both backends take the same padded batches from ``ParagraphEncoder`` and return per-window
probabilities; ``Predictor`` sorts windows by length, batches them and aggregates windows back
into paragraphs. The ONNX backends import neither torch nor transformers, which keeps start-up
fast; the ONNX files are exported once and cached beside the model (or in the user's cache when
the model folder is read-only). The int8 file is quantised from the fp32 one, all of it when the
folder has activation ranges to smooth the feed-forward output projections with (``quantize_int8``,
``stance.calibration``). The int8 backend's close calls (decisions within ``INT8_RECHECK`` of a
boundary) are run again with the fp32 file: see ``Predictor``.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .codebook import Codebook
from .encoding import CONTEXT_FEATURES, ParagraphEncoder, aggregate, length_sorted_batches
from .errors import StanceError
from .lexical import mix

BACKENDS = ("torch", "onnx", "onnx-int8")
MODEL_INPUTS = ("input_ids", "attention_mask", "actor_mask", "context")  # "context": models that use it


@dataclass
class Probabilities:
    frames: np.ndarray  # (n, n_frames)
    stance: np.ndarray  # (n, n_actors, n_values)
    windows: np.ndarray  # (n,) windows per paragraph
    rechecked: np.ndarray | None = None  # (n,) bool: decided by the fp32 recheck (``Predictor.recheck_margin``)


# onnx-int8: a paragraph with any decision closer than this to its boundary (a stance's top two values,
# a frame's probability and its threshold) is run again in fp32. Chosen on the seed dev split, where it
# re-runs about 4% of paragraphs and lifts int8-fp32 agreement from 99.1% to 99.4% (test: 98.7% to 99.3%).
INT8_RECHECK = 0.01


class TorchBackend:
    def __init__(self, model):
        import torch

        self.torch = torch
        self.model = model.eval()

    def __call__(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        torch = self.torch
        device = next(self.model.parameters()).device  # a model training on a GPU is scored there
        with torch.inference_mode():
            frames, stance = self.model(*(torch.from_numpy(batch[k]).to(device) for k in MODEL_INPUTS if k in batch))
            return torch.sigmoid(frames).float().cpu().numpy(), torch.softmax(stance, dim=-1).float().cpu().numpy()


class OnnxBackend:
    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        frames, stance = self.session.run(None, batch)
        return frames, stance


class Predictor:
    """Turns paragraph texts into aggregated probabilities with one backend.

    With ``recheck`` (a function that returns a second, exact backend; it is called once, when first
    needed) and ``recheck_margin`` > 0, paragraphs whose decisions fall within the margin of a boundary
    are run again with that backend: the int8 backend's close calls are decided in fp32.
    """

    def __init__(self, encoder: ParagraphEncoder, backend, batch_size: int = 32, lexical=None,
                 lexical_weights: dict[str, float] | None = None, offtopic_none: bool = False,
                 thresholds: dict[str, float] | None = None, recheck=None, recheck_margin: float = 0.0):
        self.encoder = encoder
        self.backend = backend
        self.batch_size = batch_size
        self.lexical = lexical
        self.lexical_weights = lexical_weights or {}
        # see ModelConfig.offtopic_none; a codebook without an absent value has nothing to give
        self.offtopic_none = offtopic_none and bool(encoder.codebook.absent_value)
        self.thresholds = dict(thresholds or {})
        self.recheck = recheck
        self.recheck_margin = recheck_margin if recheck is not None else 0.0
        self._recheck_backend = None
        self.counts = {"paragraphs": 0, "rechecked": 0}

    @classmethod
    def for_model(cls, encoder: ParagraphEncoder, backend, config, batch_size: int = 32, lexical=None,
                  recheck=None, recheck_margin: float = 0.0):
        """A predictor that applies everything a model folder's config decided at training time."""
        return cls(encoder, backend, batch_size, lexical, config.lexical_weights, config.offtopic_none,
                   config.thresholds, recheck, recheck_margin)

    def predict(self, texts: list[str], progress=None, doc_ids=None, context=None) -> Probabilities:
        """``doc_ids`` and ``context`` (a ``DocumentContext``) matter only to models that use
        document context; see ``ParagraphEncoder.encode``."""
        codebook = self.encoder.codebook
        n_f, n_a, n_v = len(codebook.frames), len(codebook.actors), len(codebook.stance_values)
        if not texts:
            return Probabilities(np.zeros((0, n_f), np.float32), np.zeros((0, n_a, n_v), np.float32),
                                 np.zeros(0, np.int64))
        windows = self.encoder.encode(texts, doc_ids=doc_ids, context=context)
        frame_p = np.zeros((len(windows), n_f), dtype=np.float32)
        stance_p = np.zeros((len(windows), n_a, n_v), dtype=np.float32)
        self._run(self.backend, windows, list(range(len(windows))), frame_p, stance_p, progress)
        w_frames, w_stance = self.lexical_weights.get("frames", 0.0), self.lexical_weights.get("stance", 0.0)
        lexical = None
        if self.lexical is not None and (w_frames or w_stance):
            lexical = self.lexical.predict(texts)
        probs = self._finish(windows, frame_p, stance_p, len(texts), lexical)
        self.counts["paragraphs"] += len(texts)
        if self.recheck_margin > 0:
            close = close_calls(probs, codebook, self.thresholds, self.recheck_margin)
            if close.any():
                if self._recheck_backend is None:
                    self._recheck_backend = self.recheck()
                again = [w for w, window in enumerate(windows) if close[window.item]]
                self._run(self._recheck_backend, windows, again, frame_p, stance_p, None)
                probs = self._finish(windows, frame_p, stance_p, len(texts), lexical)
                self.counts["rechecked"] += int(close.sum())
            probs.rechecked = close
        return probs

    def _run(self, backend, windows, subset: list[int], frame_p, stance_p, progress) -> None:
        """Probabilities of the windows ``subset`` (indices into ``windows``), written in place."""
        chosen = [windows[w] for w in subset]
        for idx in length_sorted_batches(chosen, self.batch_size):
            f, s = backend(self.encoder.collate([chosen[i] for i in idx]))
            rows = [subset[i] for i in idx]
            frame_p[rows] = f
            stance_p[rows] = s
            if progress is not None:
                progress(len(idx))

    def _finish(self, windows, frame_p, stance_p, n_items: int, lexical) -> Probabilities:
        frames, stance, n_win = aggregate(windows, frame_p, stance_p, n_items)
        if lexical is not None:
            frames = mix(frames, lexical[0], self.lexical_weights.get("frames", 0.0))
            stance = mix(stance, lexical[1], self.lexical_weights.get("stance", 0.0))
        probs = Probabilities(frames, stance, n_win)
        return offtopic_as_absent(probs, on_topic(windows, n_items), self.encoder.codebook) if self.offtopic_none else probs


def close_calls(probs: Probabilities, codebook: Codebook, thresholds: dict[str, float], margin: float) -> np.ndarray:
    """(n,) bool: paragraphs with a decision within ``margin`` of its boundary: an actor whose two most
    probable stance values are closer than ``margin``, or a frame probability that near its threshold."""
    close = np.zeros(len(probs.windows), dtype=bool)
    if probs.stance.shape[1] and probs.stance.shape[2] > 1:
        top2 = np.sort(probs.stance, axis=-1)[..., -2:]
        close |= ((top2[..., 1] - top2[..., 0]) < margin).any(axis=1)
    if probs.frames.shape[1]:
        cut = np.array([thresholds.get(f, 0.5) for f in codebook.frame_ids], dtype=np.float32)
        close |= (np.abs(probs.frames - cut) < margin).any(axis=1)
    return close


def on_topic(windows, n_items: int) -> np.ndarray:
    """(n_items,) bool: the paragraph names an actor of the codebook, or (models with document
    context) an earlier paragraph of its document did."""
    earlier = [CONTEXT_FEATURES.index(f) for f in ("named_in_previous_paragraph", "named_earlier_in_document")]
    named = np.zeros(n_items, dtype=bool)
    for w in windows:
        named[w.item] |= bool(w.actor_mask.any()) or (w.context is not None and bool(w.context[:, earlier].any()))
    return named


def offtopic_as_absent(probs: Probabilities, named: np.ndarray, codebook: Codebook) -> Probabilities:
    """Stance probability 1 on the absent value, for every actor, in paragraphs not ``named``."""
    stance = probs.stance.copy()
    stance[~named] = 0.0
    stance[~named, :, codebook.value_ids.index(codebook.absent_value)] = 1.0
    return Probabilities(probs.frames, stance, probs.windows)


def decide(probs: Probabilities, codebook: Codebook, thresholds: dict[str, float]
           ) -> tuple[list[dict[str, str]], list[list[str]]]:
    """Stance by the most probable value; frames by each frame's threshold (0.5 by default)."""
    values, actors, frames = codebook.value_ids, codebook.actor_ids, codebook.frame_ids
    best = probs.stance.argmax(-1)
    stance = [{a: values[best[i, j]] for j, a in enumerate(actors)} for i in range(len(best))]
    cut = np.array([thresholds.get(f, 0.5) for f in frames], dtype=np.float32)
    on = probs.frames >= cut if frames else np.zeros((len(best), 0), bool)
    frame_lists = [[f for k, f in enumerate(frames) if on[i, k]] for i in range(len(best))]
    return stance, frame_lists


# -- ONNX export ---------------------------------------------------------------------------------

# Part of the cache key: a change to how the graph is exported or quantised re-exports it.
# 2: fused attention and layer norms; FFN output projections kept fp32 in int8
# 3: with an int8 calibration file, those projections are smoothed and quantised too
EXPORT_VERSION = "3"


def _fingerprint(folder: Path) -> str:
    from .calibration import CALIBRATION_FILE

    h = hashlib.sha256(EXPORT_VERSION.encode())
    for name in ("model.safetensors", "config.json", "encoder.safetensors", CALIBRATION_FILE):
        p = folder / name
        if p.exists():
            h.update(name.encode())  # a file that appears or disappears changes the key
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _cache_dir(folder: Path) -> Path:
    local = folder / "onnx"
    try:
        local.mkdir(exist_ok=True)
        probe = local / ".write-test"
        probe.touch()
        probe.unlink()
        return local
    except OSError:
        from .bases import user_cache_dir

        home = user_cache_dir()
        home.mkdir(parents=True, exist_ok=True)
        return home


def onnx_path(folder: str | Path, backend: str, log=print) -> Path:
    """The cached ONNX file for a model folder, exported (and quantised) on first use."""
    from .calibration import CALIBRATION_FILE

    folder = Path(folder)
    if backend not in ("onnx", "onnx-int8"):
        raise StanceError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    stamp = _fingerprint(folder)
    cache = _cache_dir(folder)
    fp32 = cache / f"model-{stamp}-fp32.onnx"
    int8 = cache / f"model-{stamp}-int8.onnx"
    if not fp32.exists():
        log(f"exporting the model to ONNX once: {fp32}")
        export_onnx(folder, fp32)
    if backend == "onnx":
        return fp32
    if not int8.exists():
        calibration = folder / CALIBRATION_FILE
        log(f"quantising to int8 once: {int8}" + ("" if calibration.exists() else
            f" (no {CALIBRATION_FILE} in the folder: FFN output projections stay fp32)"))
        tmp = int8.with_suffix(".tmp.onnx")
        quantize_int8(fp32, tmp, calibration if calibration.exists() else None)
        tmp.replace(int8)
    return int8


# The feed-forward projections read inputs where a few channels are far larger than the rest: the
# output projection (``layer.N/output/dense/MatMul``) the 4x-wide GELU activations (on the default
# model, max 25 against a median of 2), the input projection (``layer.N/intermediate/dense/MatMul``)
# the layer-norm output (max 12-30 against a median of 2). One dynamic int8 scale per tensor either
# clips those channels or crushes the others. Two remedies:
#
# - with the folder's calibration file (``stance.calibration``), SmoothQuant: the input of each
#   projection is divided channel by channel by s_j = max|x_j|^a / max|W_j,:|^(1-a) (one Mul by a
#   constant before the MatMul) and row j of its weight is multiplied by s_j. The fp32 graph's
#   outputs do not change (to 1e-6) but the outliers move into the weights, which are quantised per
#   output channel, and every MatMul is int8. On the model where this was chosen, int8 agreed with
#   fp32 on 99.51% of stance and 99.68% of frame decisions on the seed dev split (99.20% and 99.91%
#   on test); a = 0.8 was chosen on dev for both kinds. On the retrained default model the same
#   recipe gives 99.08% on dev and 98.72% on test, and a = 0.5-0.9, one layer's output projection
#   or all attention output projections kept fp32, or the heads in fp32 gave no more than 99.42%
#   on dev and 99.09% on test (README, "How good is it").
# - without it (folders trained before the file existed), the six output projections are kept
#   fp32: about a sixth slower than a fully int8 graph. A file of format 1 (output projections
#   only) smooths those alone.
_FFN_OUT = re.compile(r"layer\.(\d+)/output/dense/MatMul$")
_KEEP_FP32 = _FFN_OUT  # the FFN output projections quantize_int8 keeps fp32 when it cannot smooth them
_FFN_IN = re.compile(r"layer\.(\d+)/intermediate/dense/MatMul$")
SMOOTH_ALPHA = 0.8


def smooth_ffn_outputs(model, ranges: dict[int, np.ndarray], alpha: float = SMOOTH_ALPHA,
                       pattern: re.Pattern = _FFN_OUT) -> list[str]:
    """SmoothQuant the FFN output projections of an exported ONNX model, in place.

    ``ranges``: max|x_j| of each projection's input per layer (``stance.calibration``). For each
    ``layer.N/output/dense/MatMul`` with ranges for N, a Mul by the constant 1/s is put on its input
    and its weight is replaced by a copy with row j scaled by s_j (a new initializer, so a weight
    shared with another node is left as it is; a weight read through a Transpose of an initializer
    is stored already transposed). Returns the names of the MatMuls it smoothed.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    smoothed, new_nodes, replaced = [], [], set()
    for node in graph.node:
        match = pattern.search(node.name)
        if node.op_type != "MatMul" or not match or int(match.group(1)) not in ranges:
            new_nodes.append(node)
            continue
        w_name = node.input[1]
        if w_name in inits:
            w = numpy_helper.to_array(inits[w_name])
            replaced.add(w_name)
        elif (w_name in producer and producer[w_name].op_type == "Transpose"
              and producer[w_name].input[0] in inits
              and [list(a.ints) for a in producer[w_name].attribute if a.name == "perm"] in ([], [[1, 0]])):
            w = numpy_helper.to_array(inits[producer[w_name].input[0]]).T
            replaced |= {producer[w_name].name, producer[w_name].input[0]} - {""}
        else:
            new_nodes.append(node)  # a weight computed at run time: left unsmoothed
            continue
        act = np.asarray(ranges[int(match.group(1))], dtype=np.float64)
        if w.ndim != 2 or act.shape != (w.shape[0],):
            raise StanceError(f"the int8 calibration file does not fit this model: {node.name} has "
                              f"{w.shape[0] if w.ndim == 2 else w.shape} input channels, the file "
                              f"{act.shape[0] if act.ndim == 1 else act.shape}; record it again "
                              "(stance.calibration.record_activation_ranges)")
        w = w.astype(np.float64)
        s = np.maximum(act, 1e-5) ** alpha / np.maximum(np.abs(w).max(axis=1), 1e-5) ** (1 - alpha)
        stem = node.name.strip("/").replace("/", "_")
        inv_name, w_new, x_new = f"{stem}_smooth_inv_scale", f"{stem}_smoothed_weight", f"{stem}_smoothed_input"
        graph.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), inv_name))
        graph.initializer.append(numpy_helper.from_array((w * s[:, None]).astype(np.float32), w_new))
        new_nodes.append(helper.make_node("Mul", [node.input[0], inv_name], [x_new], name=f"{node.name}_smooth"))
        node.input[0], node.input[1] = x_new, w_new
        new_nodes.append(node)
        smoothed.append(node.name)
    new_nodes = [_copy(n) for n in new_nodes]  # detached from the graph before it is emptied
    del graph.node[:]
    graph.node.extend(new_nodes)
    _drop_unread(graph, replaced)
    return smoothed


def _copy(message):
    out = type(message)()
    out.CopyFrom(message)
    return out


def _drop_unread(graph, names: set[str]) -> None:
    """Remove the initializers and Transpose nodes among ``names`` that nothing reads any more
    (a weight the smoothing replaced, unless another node shares it)."""
    while True:
        read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if n.name in names and not any(o in read for o in n.output)]
        for n in dead:
            graph.node.remove(n)
        if not dead:
            break
    keep = [_copy(t) for t in graph.initializer if t.name not in names or t.name in read]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)


def quantize_int8(fp32: Path, out: Path, calibration: Path | None = None, alpha: float = SMOOTH_ALPHA) -> None:
    """Dynamic int8 quantisation (per-channel weights, per-tensor activations) of the exported graph.

    With ``calibration`` (a folder's ``int8_calibration.safetensors``) the FFN output projections
    are smoothed (``smooth_ffn_outputs``) and every MatMul is quantised; without it they stay fp32.
    """
    import logging
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32, out = Path(fp32), Path(out)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        if calibration is None:
            source, smoothed = fp32, []
            graph = onnx.load(str(fp32), load_external_data=False).graph
        else:
            from .calibration import load_calibration

            model, ranges = onnx.load(str(fp32)), load_calibration(calibration)
            smoothed = smooth_ffn_outputs(model, ranges["output"], alpha)
            smooth_ffn_outputs(model, ranges["intermediate"], alpha, _FFN_IN)
            source, graph = Path(tmp) / "smoothed.onnx", model.graph
            onnx.save(model, str(source))
        keep = [n.name for n in graph.node
                if n.op_type == "MatMul" and _KEEP_FP32.search(n.name) and n.name not in smoothed]
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantiser's advice to pre-process is for static quantisation
        try:
            quantize_dynamic(str(source), str(out), per_channel=True, weight_type=QuantType.QInt8,
                             nodes_to_exclude=keep,
                             # the fused operators are outside ONNX's type inference; their outputs are float
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        finally:
            root.setLevel(level)


def export_onnx(folder: Path, out: Path) -> None:
    import torch

    from .model import StanceModel, merge_lora

    model = StanceModel.from_pretrained(folder)
    merge_lora(model.encoder)
    # the eager attention graph is the pattern ONNX Runtime's transformer optimiser fuses
    model.encoder.set_attn_implementation("eager")
    model.eval()

    class WithProbabilities(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *inputs):
            frames, stance = self.inner(*inputs)
            return torch.sigmoid(frames), torch.softmax(stance, dim=-1)

    n_actors = len(model.codebook.actors)
    ids = torch.ones((2, 12), dtype=torch.long)
    mask = torch.ones((2, 12), dtype=torch.long)
    actor_mask = torch.zeros((2, n_actors, 12), dtype=torch.float32)
    example = (ids, mask, actor_mask)
    if model.n_context:
        example += (torch.zeros((2, n_actors, model.n_context), dtype=torch.float32),)
    tmp = out.with_suffix(".tmp.onnx")
    import warnings

    with warnings.catch_warnings():
        # the tracer warns about shape-dependent Python branches in transformers; the tests check
        # that the exported graph matches torch across batch sizes and padding
        warnings.simplefilter("ignore")
        _export(torch, WithProbabilities(model), example, tmp)
        if getattr(model.encoder.config, "model_type", "bert") == "bert":  # the fusions are BERT's
            _fuse(tmp, model.encoder.config)
    tmp.replace(out)  # a half-written export never looks finished


def _fuse(path: Path, encoder_config) -> None:
    """Fuse attention, embedding and skip layer norms and GELU into ONNX Runtime's operators, in
    place (about 10% faster on CPU, same outputs to 1e-6). Level-0 optimisation only: the
    session applies the rest for the machine it runs on."""
    import logging

    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    fused = optimize_model(str(path), model_type="bert", num_heads=encoder_config.num_attention_heads,
                           hidden_size=encoder_config.hidden_size, opt_level=0)
    fused.save_model_to_file(str(path))


def _export(torch, module, example, path) -> None:
    inputs = list(MODEL_INPUTS[:len(example)])
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "actor_mask": {0: "batch", 2: "tokens"}, "context": {0: "batch"}, "frame_probs": {0: "batch"},
            "stance_probs": {0: "batch"}}
    torch.onnx.export(
        module, example, str(path), dynamo=False, opset_version=17,
        input_names=inputs,
        output_names=["frame_probs", "stance_probs"],
        dynamic_axes={k: v for k, v in axes.items() if k in inputs or k.endswith("_probs")},
    )
