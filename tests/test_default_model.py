"""Integration: the shipped default model loads from the repository and labels real-looking text."""
import time
from pathlib import Path

import pytest

from stance import Labeler
from stance.labeler import DEFAULT_MODEL

pytestmark = pytest.mark.integration

PARAGRAPHS = [
    "Vladimir Putin was left standing alone at the edge of the G20 family photo, and the Kremlin leader "
    "flew home a day early, a snub that showed how isolated Russia has become since the invasion.",
    "The plan would trade Ukrainian territory in the Donbas for sanctions relief and a pledge that Kyiv "
    "never joins NATO, a sweeping deal negotiated between Washington and Moscow over Ukraine's head.",
    "Dmitry Peskov told reporters on Tuesday that the Kremlin had no comment on the schedule.",
    "Shoppers queued from dawn for Black Friday bargains at the mall, where a discounted television "
    "sold out within minutes.",
]


@pytest.fixture(scope="module")
def labeler():
    assert (DEFAULT_MODEL / "model.safetensors").exists(), "the default model is not in the repository"
    return Labeler.from_pretrained(DEFAULT_MODEL, backend="torch")  # the model as the card scored it


def test_shipped_model_is_small_and_complete():
    files = {p.name: p.stat().st_size for p in DEFAULT_MODEL.iterdir() if p.is_file()}
    assert {"config.json", "model.safetensors", "codebook.yaml", "README.md"} <= set(files)
    assert sum(files.values()) < 20 * 1024 * 1024
    card = (DEFAULT_MODEL / "README.md").read_text()
    assert "test split" in card and "tfidf_lr" in card


def test_default_model_labels_clear_cases(labeler):
    df = labeler.label(PARAGRAPHS)
    assert df.loc[0, "frame_isolation"] == 1 and df.loc[0, "stance_putin"] == "against"
    assert df.loc[1, "frame_grand_bargain"] == 1
    assert df.loc[2, "stance_russia"] == "neutral" and df.loc[2, "stance_trump"] == "none"
    assert df.loc[3, ["frame_isolation", "frame_resentment", "frame_grand_bargain"]].sum() == 0
    assert (df.loc[3, [f"stance_{a}" for a in labeler.codebook.actor_ids]] == "none").all()


def test_default_model_onnx_int8_agrees_with_torch(labeler, tmp_path):
    import shutil

    folder = tmp_path / "default"
    shutil.copytree(DEFAULT_MODEL, folder, ignore=shutil.ignore_patterns("onnx"))
    int8 = Labeler.from_pretrained(folder, backend="onnx-int8", log=lambda m: None).label(PARAGRAPHS)
    ref = labeler.label(PARAGRAPHS)
    cols = [c for c in ref.columns if c.startswith(("stance_", "frame_"))]
    assert (int8[cols].to_numpy() == ref[cols].to_numpy()).mean() >= 0.95
