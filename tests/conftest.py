"""Shared fixtures: a tiny randomly initialised encoder trained for seconds on a small file."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from stance.codebook import Codebook

ROOT = Path(__file__).resolve().parents[1]
TINY_ENCODER = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, max_position_embeddings=512)

_SUBJECTS = {
    "putin": ["Vladimir Putin", "Mr Putin", "the Kremlin leader"],
    "trump": ["Donald Trump", "Mr. Trump"],
    "russia": ["Moscow", "the Kremlin", "Russian officials"],
    "ukraine": ["Kyiv", "Zelensky", "Ukrainian forces"],
    "west": ["NATO", "the EU", "Washington"],
}
_PHRASES = {
    "favor": "was praised for a wise and courageous decision that {other} welcomed",
    "against": "was condemned for lying about the attack, a disgraceful failure that {other} mocked",
    "neutral": "said on Tuesday that a meeting with {other} would take place next week",
}
_FRAMES = {
    "isolation": "Critics say the visit shows that Russia is no longer a pariah shut out of the G8.",
    "resentment": "State television blamed Russophobia and the humiliation inflicted by the collective West.",
    "grand_bargain": "The plan trades territory and sanctions relief for a broad deal on spheres of influence.",
}


def assert_split_forward_matches(model, codebook) -> None:
    """``lower`` then ``upper`` gives ``forward``'s logits, with padding and without it, once the
    adapters look trained (so the tuned layers are not the base's)."""
    import torch

    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if "lora_b" in name:
            p.data.normal_(0, 0.1)
    model.eval()
    ids = torch.randint(1000, 3000, (3, 20))
    mask = torch.ones(3, 20, dtype=torch.long)
    mask[1, 12:] = 0
    mask[2, 5:] = 0
    actor_mask = torch.zeros(3, len(codebook.actors), 20)
    actor_mask[:, 0, 2:4] = 1
    context = torch.rand(3, len(codebook.actors), model.n_context)
    with torch.no_grad():
        whole = model(ids, mask, actor_mask, context)
        split = model.upper(model.lower(ids, mask), mask, actor_mask, context)
        short = model.upper(model.lower(ids[2:, :5], mask[2:, :5]), mask[2:, :5], actor_mask[2:, :, :5],
                            context[2:])
    for a, b in zip(whole, split):
        assert torch.allclose(a, b, atol=1e-5)
    for a, b in zip(whole, short):  # the same paragraph without padding
        assert torch.allclose(a[2:], b, atol=1e-5)


def synthetic_records(n: int, seed: int = 0, prefix: str = "s") -> list[dict]:
    """Short labelled paragraphs from templates: enough signal for a tiny model to learn."""
    rng = random.Random(seed)
    actors = list(_SUBJECTS)
    out = []
    for i in range(n):
        actor = rng.choice(actors)
        other = rng.choice([a for a in actors if a != actor])
        value = rng.choice(list(_PHRASES))
        text = f"{rng.choice(_SUBJECTS[actor])} {_PHRASES[value].format(other=rng.choice(_SUBJECTS[other]))}."
        frames = [f for f in _FRAMES if rng.random() < 0.3]
        text += " " + " ".join(_FRAMES[f] for f in frames)
        stance = {a: "none" for a in actors}
        stance[actor] = value
        stance[other] = "neutral"
        if "isolation" in frames or "resentment" in frames:
            stance["russia"] = "neutral" if actor != "russia" else value
        if "resentment" in frames and actor != "west" and other != "west":
            stance["west"] = "neutral"
        out.append({"id": f"{prefix}{i}", "doc_id": f"{prefix}doc{i // 4}", "text": text, "stance": stance,
                    "frames": frames})
    return out


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def codebook() -> Codebook:
    return Codebook.load(ROOT / "seeds" / "codebook.yaml")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    return {"train": write_jsonl(d / "train.jsonl", synthetic_records(96, seed=1, prefix="t")),
            "dev": write_jsonl(d / "dev.jsonl", synthetic_records(32, seed=2, prefix="d")),
            "dir": d}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_data, codebook) -> Path:
    """A model folder trained end to end with the real training command on a tiny encoder."""
    from stance.train import TrainConfig, train_to_folder

    out = tmp_path_factory.mktemp("models") / "tiny"
    config = TrainConfig(epochs=3, batch_size=16, base="random", encoder_config=TINY_ENCODER, lora_r=4,
                         lr_lora=3e-3, lr_heads=5e-3, seed=7, progress=False)
    train_to_folder([tiny_data["train"]], [tiny_data["dev"]], out, codebook, config,
                    test_paths=[tiny_data["dev"]], n_boot=20, log=lambda m: None)
    return out
