"""Base encoders of another architecture: MPNet (all-mpnet-base-v2's), on a tiny random one."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from conftest import TINY_ENCODER, assert_split_forward_matches, synthetic_records
from stance import Labeler
from stance.folder import ModelConfig
from stance.model import LoRALinear, StanceModel

TINY_MPNET = dict(TINY_ENCODER, model_type="mpnet", max_position_embeddings=514, layer_norm_eps=1e-5)


def _bert_tokenizer():
    from tokenizers import Tokenizer

    from stance.folder import DEFAULT_BASE, base_path

    return Tokenizer.from_file(str(base_path(DEFAULT_BASE) / "tokenizer.json"))


def test_special_tokens_come_from_the_tokenizer():
    from tokenizers import processors

    from stance.encoding import special_ids

    bert = _bert_tokenizer()
    bert.enable_truncation(max_length=128)
    settings = (bert.padding, bert.truncation)
    assert settings[0] is not None
    assert special_ids(bert) == (101, 102, 0)  # [CLS], [SEP], [PAD]
    assert (bert.padding, bert.truncation) == settings  # the file's own settings are put back
    # an MPNet-style tokenizer: <s> text </s>, padded with <pad>
    mpnet = _bert_tokenizer()
    mpnet.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    mpnet.enable_padding(pad_id=1, pad_token="<pad>")
    assert special_ids(mpnet) == (0, 2, 1)
    mpnet.no_padding()
    with pytest.raises(ValueError, match="not a start and an end"):
        mpnet.post_processor = processors.TemplateProcessing(single="$A", special_tokens=[])
        special_ids(mpnet)


def test_mpnet_gets_its_own_lora_targets_and_splits_the_forward_pass_exactly(codebook):
    model = StanceModel.create(codebook, ModelConfig(base="random", encoder_config=dict(TINY_MPNET, num_hidden_layers=3),
                                                     lora_r=2, lora_layers=1, context_features=3))
    assert type(model.encoder).__name__ == "MPNetModel"
    lora = sorted(n for n, m in model.encoder.named_modules() if isinstance(m, LoRALinear))
    assert [n.rsplit("layer.2.", 1)[1] for n in lora] == [
        "attention.attn.k", "attention.attn.o", "attention.attn.q", "attention.attn.v",
        "intermediate.dense", "output.dense"]
    assert model.config.lora_targets[0] == "attn.q"  # saved with the folder, so loading adapts the same layers
    assert_split_forward_matches(model, codebook)  # MPNet's relative position bias included


def test_an_unknown_architecture_is_named(codebook):
    from stance.errors import SettingError

    config = ModelConfig(base="random", encoder_config=TINY_MPNET, lora_targets=("no_such_layer",))
    with pytest.raises(SettingError, match="no linear layer of the 'mpnet' base encoder matches.*bert, mpnet"):
        StanceModel.create(codebook, config)


def test_an_mpnet_model_trains_saves_and_labels_alike_in_torch_and_onnx(tiny_data, codebook, tmp_path):
    from stance.train import TrainConfig, train_to_folder

    out = tmp_path / "mpnet"
    config = TrainConfig(epochs=3, batch_size=16, base="random", encoder_config=TINY_MPNET, lora_r=4,
                         lr_lora=3e-3, lr_heads=5e-3, seed=7, progress=False, lora_layers=1)
    train_to_folder([tiny_data["train"]], [tiny_data["dev"]], out, codebook, config, n_boot=20, baselines=False,
                    log=lambda m: None)
    saved = json.loads((out / "config.json").read_text())
    assert saved["encoder_config"]["model_type"] == "mpnet" and saved["lora_targets"][0] == "attn.q"
    texts = [r["text"] for r in synthetic_records(24, seed=5)] + ["Kyiv said no.", "Short one about Trump."]
    torch_df = Labeler.from_pretrained(out, backend="torch", batch_size=8).label(texts)
    again = Labeler.from_pretrained(out, backend="torch", batch_size=8).label(texts)
    prob_cols = [c for c in torch_df.columns if c.startswith("p_")]
    np.testing.assert_array_equal(torch_df[prob_cols].to_numpy(float), again[prob_cols].to_numpy(float))
    onnx_df = Labeler.from_pretrained(out, backend="onnx", batch_size=8).label(texts)
    np.testing.assert_allclose(torch_df[prob_cols].to_numpy(float), onnx_df[prob_cols].to_numpy(float), atol=2e-4)
    int8_df = Labeler.from_pretrained(out, backend="onnx-int8", batch_size=8).label(texts)
    stance_cols = [c for c in torch_df.columns if c.startswith("stance_")]
    assert (int8_df[stance_cols].to_numpy() == torch_df[stance_cols].to_numpy()).mean() > 0.9
