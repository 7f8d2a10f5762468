"""Paragraphs to probabilities, with a PyTorch or an ONNX Runtime backend.

Both backends take the same padded batches from ``ParagraphEncoder`` and return per-window
probabilities; ``Predictor`` sorts windows by length, batches them and aggregates windows back
into paragraphs. The ONNX backends import neither torch nor transformers, which keeps start-up
fast; the ONNX files are exported once and cached beside the model (or in the user's cache when
the model folder is read-only).
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .codebook import Codebook
from .encoding import ParagraphEncoder, aggregate, length_sorted_batches
from .errors import StanceError
from .lexical import mix

BACKENDS = ("torch", "onnx", "onnx-int8")


@dataclass
class Probabilities:
    frames: np.ndarray  # (n, n_frames)
    stance: np.ndarray  # (n, n_actors, n_values)
    windows: np.ndarray  # (n,) windows per paragraph


class TorchBackend:
    def __init__(self, model):
        import torch

        self.torch = torch
        self.model = model.eval()

    def __call__(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        torch = self.torch
        with torch.inference_mode():
            frames, stance = self.model(torch.from_numpy(batch["input_ids"]),
                                        torch.from_numpy(batch["attention_mask"]),
                                        torch.from_numpy(batch["actor_mask"]))
            return torch.sigmoid(frames).numpy(), torch.softmax(stance, dim=-1).numpy()


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
    """Turns paragraph texts into aggregated probabilities with one backend."""

    def __init__(self, encoder: ParagraphEncoder, backend, batch_size: int = 32, lexical=None,
                 lexical_weights: dict[str, float] | None = None):
        self.encoder = encoder
        self.backend = backend
        self.batch_size = batch_size
        self.lexical = lexical
        self.lexical_weights = lexical_weights or {}

    def predict(self, texts: list[str], progress=None) -> Probabilities:
        codebook = self.encoder.codebook
        n_f, n_a, n_v = len(codebook.frames), len(codebook.actors), len(codebook.stance_values)
        if not texts:
            return Probabilities(np.zeros((0, n_f), np.float32), np.zeros((0, n_a, n_v), np.float32),
                                 np.zeros(0, np.int64))
        windows = self.encoder.encode(texts)
        frame_p = np.zeros((len(windows), n_f), dtype=np.float32)
        stance_p = np.zeros((len(windows), n_a, n_v), dtype=np.float32)
        for idx in length_sorted_batches(windows, self.batch_size):
            f, s = self.backend(self.encoder.collate([windows[i] for i in idx]))
            frame_p[idx] = f
            stance_p[idx] = s
            if progress is not None:
                progress(len(idx))
        frames, stance, n_win = aggregate(windows, frame_p, stance_p, len(texts))
        w_frames, w_stance = self.lexical_weights.get("frames", 0.0), self.lexical_weights.get("stance", 0.0)
        if self.lexical is not None and (w_frames or w_stance):
            lex_frames, lex_stance = self.lexical.predict(texts)
            frames, stance = mix(frames, lex_frames, w_frames), mix(stance, lex_stance, w_stance)
        return Probabilities(frames, stance, n_win)


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
EXPORT_VERSION = "2"  # 2: fused attention and layer norms; FFN output projections kept fp32 in int8


def _fingerprint(folder: Path) -> str:
    h = hashlib.sha256(EXPORT_VERSION.encode())
    for name in ("model.safetensors", "config.json", "encoder.safetensors"):
        p = folder / name
        if p.exists():
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
        home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stance"
        home.mkdir(parents=True, exist_ok=True)
        return home


def onnx_path(folder: str | Path, backend: str, log=print) -> Path:
    """The cached ONNX file for a model folder, exported (and quantised) on first use."""
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
        log(f"quantising to int8 once: {int8}")
        tmp = int8.with_suffix(".tmp.onnx")
        quantize_int8(fp32, tmp)
        tmp.replace(int8)
    return int8


# The feed-forward output projections read the 4x-wide GELU activations, whose outliers a
# per-tensor dynamic int8 scale clips; keeping these six matrices in fp32 raises int8's agreement
# with fp32 from 98.9% to 99.1% of stance decisions on the seed test split (98.9% on dev), at about
# a quarter of int8's speed (see benchmarks/label_speed.py).
_KEEP_FP32 = re.compile(r"layer\.\d+/output/dense/MatMul$")


def quantize_int8(fp32: Path, out: Path) -> None:
    """Dynamic int8 quantisation (per-channel weights) of the exported graph."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(fp32), load_external_data=False).graph
    keep = [n.name for n in graph.node if n.op_type == "MatMul" and _KEEP_FP32.search(n.name)]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser's advice to pre-process is for static quantisation
    try:
        quantize_dynamic(str(fp32), str(out), per_channel=True, weight_type=QuantType.QInt8, nodes_to_exclude=keep,
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

        def forward(self, input_ids, attention_mask, actor_mask):
            frames, stance = self.inner(input_ids, attention_mask, actor_mask)
            return torch.sigmoid(frames), torch.softmax(stance, dim=-1)

    n_actors = len(model.codebook.actors)
    ids = torch.ones((2, 12), dtype=torch.long)
    mask = torch.ones((2, 12), dtype=torch.long)
    actor_mask = torch.zeros((2, n_actors, 12), dtype=torch.float32)
    tmp = out.with_suffix(".tmp.onnx")
    import warnings

    with warnings.catch_warnings():
        # the tracer warns about shape-dependent Python branches in transformers; the tests check
        # that the exported graph matches torch across batch sizes and padding
        warnings.simplefilter("ignore")
        _export(torch, WithProbabilities(model), (ids, mask, actor_mask), tmp)
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
    torch.onnx.export(
        module, example, str(path), dynamo=False, opset_version=17,
        input_names=["input_ids", "attention_mask", "actor_mask"],
        output_names=["frame_probs", "stance_probs"],
        dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                      "actor_mask": {0: "batch", 2: "tokens"}, "frame_probs": {0: "batch"},
                      "stance_probs": {0: "batch"}},
    )
