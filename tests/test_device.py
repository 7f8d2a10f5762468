"""Training on a GPU (``--device``) and reusing a fitted lexical side across runs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stance.data import read_records
from stance.errors import SettingError
from stance.train import TrainConfig, fit_lexical, resolve_device, train

from conftest import TINY_ENCODER


def _config(**kw) -> TrainConfig:
    base = dict(epochs=2, batch_size=16, base="random", encoder_config=TINY_ENCODER, lora_r=4, lr_lora=3e-3,
                lr_heads=5e-3, seed=7, progress=False)
    return TrainConfig(**{**base, **kw})


def _records(tiny_data, codebook):
    return read_records([tiny_data["train"]], codebook), read_records([tiny_data["dev"]], codebook)


def test_resolve_device_names_and_errors(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(SettingError, match="sees no CUDA GPU.*use --device cpu"):
        resolve_device("cuda")
    with pytest.raises(SettingError, match="not a device name"):
        resolve_device("gpu0")
    with pytest.raises(SettingError, match="cpu or cuda, not meta"):
        resolve_device("meta")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == torch.device("cuda")
    with pytest.raises(SettingError, match="only 1 CUDA GPU"):
        resolve_device("cuda:3")


def test_auto_device_without_a_gpu_trains_exactly_as_cpu(tiny_data, codebook, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    tr, dev = _records(tiny_data, codebook)
    a = train(tr, dev, codebook, _config(device="cpu", lexical=False), log=lambda m: None)
    b = train(tr, dev, codebook, _config(device="auto", lexical=False), log=lambda m: None)
    sa, sb = a.model.trainable_state(), b.model.trainable_state()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert next(a.model.parameters()).device.type == "cpu"
    assert "CPU threads" in b.device and "CUDA" not in b.device  # what the card will say


def test_train_command_names_a_missing_gpu(tiny_data, tmp_path, capsys, monkeypatch):
    from stance.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main(["train", "--train", str(tiny_data["train"]), "--dev", str(tiny_data["dev"]),
                 "--out", str(tmp_path / "m"), "--device", "cuda"])
    assert code == 2
    err = capsys.readouterr().err
    assert "device 'cuda': this PyTorch sees no CUDA GPU" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()  # nothing half-written


def test_a_fitted_lexical_side_is_reused_not_refitted(tiny_data, codebook, monkeypatch):
    from stance.lexical import LexicalModel

    tr, dev = _records(tiny_data, codebook)
    config = _config(epochs=1)
    fresh = train(tr, dev, codebook, config, log=lambda m: None)
    fitted = fit_lexical(tr, codebook, config)

    def refit(*a, **k):
        raise AssertionError("the lexical side was fitted again")

    monkeypatch.setattr(LexicalModel, "fit", refit)
    reused = train(tr, dev, codebook, config, log=lambda m: None, lexical=fitted)
    assert reused.model.config.lexical_weights == fresh.model.config.lexical_weights
    if fresh.lexical is not None:
        texts = [r.text for r in dev]
        for x, y in zip(fresh.lexical.predict(texts), reused.lexical.predict(texts)):
            np.testing.assert_allclose(x, y)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_a_gpu_returns_a_cpu_model_that_labels(tiny_data, codebook, tmp_path):
    from stance.labeler import Labeler

    tr, dev = _records(tiny_data, codebook)
    result = train(tr, dev, codebook, _config(device="cuda", epochs=3, lora_layers=1, bf16=True),
                   log=lambda m: None)
    assert all(p.device.type == "cpu" for p in result.model.parameters())
    assert "(CUDA)" in result.device
    assert result.history[-1]["dev_stance_f1"] > 0.3  # it learned the templates on the GPU
    result.model.save_pretrained(tmp_path / "m")
    df = Labeler.from_pretrained(tmp_path / "m", backend="torch").label([r.text for r in dev[:4]])
    assert len(df) == 4


def test_the_card_names_where_training_ran(monkeypatch):
    from stance.card import describe_device

    assert "CPU threads" in describe_device(torch.device("cpu")) and "CUDA" not in describe_device(None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Test GPU 80GB")
    assert describe_device(torch.device("cuda", 0)).startswith("Test GPU 80GB (CUDA)")
