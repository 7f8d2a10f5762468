"""The recipe sweep: each recipe trained and scored once, a cut-short sweep resumed, bad recipes named."""
import importlib.util
import json
from pathlib import Path

import pytest

from conftest import TINY_ENCODER

spec = importlib.util.spec_from_file_location(
    "recipe_sweep", Path(__file__).resolve().parents[1] / "benchmarks" / "recipe_sweep.py")
sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep)

TINY = {"base": "random", "encoder_config": TINY_ENCODER, "lora_layers": None, "lr_lora": 3e-3,
        "lr_heads": 5e-3, "epochs": 2, "lexical_char_ngrams": None}


def _args(tiny_data, recipes, out):
    return ["--recipes", str(recipes), "--train", str(tiny_data["train"]), "--dev", str(tiny_data["dev"]),
            "--test", str(tiny_data["dev"]), "--device", "cpu", "--out", str(out)]


def test_recipe_config_starts_from_the_shipped_command():
    c = sweep.recipe_config({"lora_r": 8}, "cpu")
    assert (c.lora_r, c.lora_alpha) == (8, 16.0)  # alpha = 2r, as `stance train --lora-r` sets it
    assert (c.epochs, c.lora_layers, c.lexical_char_ngrams, c.bf16) == (5, 3, (2, 5), True)
    assert sweep.recipe_config({"lora_r": 8, "lora_alpha": 4.0}, "cpu", epochs=1).lora_alpha == 4.0
    with pytest.raises(SystemExit, match="not in TrainConfig: learning_rate"):
        sweep.recipe_config({"learning_rate": 1e-3}, "cpu")


def test_sweep_scores_each_recipe_and_resumes_without_retraining(tiny_data, tmp_path, monkeypatch, capsys):
    recipes = tmp_path / "recipes.json"
    recipes.write_text(json.dumps([{"name": "a", "config": {**TINY, "lora_r": 4}},
                                   {"name": "b", "config": {**TINY, "lora_r": 4, "seed": 8}}]))
    out = tmp_path / "sweep.json"
    assert sweep.main(_args(tiny_data, recipes, out) + ["--only", "a"]) == 0
    first = json.loads(out.read_text())["recipes"]
    assert list(first) == ["a"]
    a = first["a"]
    assert len(a["history"]) == a["epochs_run"] and 1 <= a["best_epoch"] <= 2
    for split in ("dev", "test"):
        assert set(a[split]) == {"frames", "stance", "reference", "stance_encoder_alone"}
        assert all(0.0 <= v <= 1.0 for v in a[split].values())
    if not a["lexical_weights"].get("stance"):  # no lexical share: the two stance figures are one
        assert a["dev"]["stance"] == a["dev"]["stance_encoder_alone"]

    trained = []
    real_train = sweep.train
    monkeypatch.setattr(sweep, "train", lambda *x, **k: trained.append(x[3].seed) or real_train(*x, **k))
    assert sweep.main(_args(tiny_data, recipes, out)) == 0
    assert trained == [8]  # "a" was already in the file: only "b" trained
    both = json.loads(out.read_text())["recipes"]
    assert both["a"] == a and set(both) == {"a", "b"}
    printed = capsys.readouterr().out
    assert "| a |" in printed and "| b |" in printed


def test_sweep_names_unknown_recipes(tiny_data, tmp_path):
    recipes = tmp_path / "recipes.json"
    recipes.write_text(json.dumps([{"name": "a", "config": TINY}]))
    with pytest.raises(SystemExit, match="no recipe named nope"):
        sweep.main(_args(tiny_data, recipes, tmp_path / "o.json") + ["--only", "nope"])
