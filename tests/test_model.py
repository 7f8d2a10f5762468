"""The model end to end on a tiny random encoder: train, save, load, export, errors."""
import json
import shutil

import numpy as np
import pytest

from conftest import TINY_ENCODER, assert_split_forward_matches, synthetic_records, write_jsonl
from stance import Labeler
from stance.codebook import Codebook
from stance.data import read_records
from stance.folder import ModelFolderError
from stance.model import StanceModel


def test_training_writes_a_complete_small_model_folder(tiny_model):
    names = {p.name for p in tiny_model.iterdir()}
    assert {"config.json", "model.safetensors", "codebook.yaml", "README.md", "evaluation.json"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pkl"))]  # safetensors only
    card = (tiny_model / "README.md").read_text()
    assert "| this model |" in card and "| tfidf_lr |" in card and "| majority |" in card
    assert "Seed: 7" in card and "Library versions" in card and "train_hash" in card
    config = json.loads((tiny_model / "config.json").read_text())
    assert set(config["thresholds"]) == {"isolation", "resentment", "grand_bargain"}
    # what training decided on dev is in the config and said in the card
    assert isinstance(config["offtopic_none"], bool)
    assert f"chosen on dev: {'on' if config['offtopic_none'] else 'off'}" in card
    assert "share of the probabilities, chosen on dev:" in card


def test_the_tiny_model_learns_references(tiny_model):
    scores = json.loads((tiny_model / "evaluation.json").read_text())
    model_scores = scores["evaluations"]["dev split"]["this model"]
    # references come with alias spans, so even a tiny encoder should find them
    assert model_scores["reference_f1"]["value"] > 0.85
    history = scores["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert all(h["step_seconds"] > 0 for h in history)  # each epoch's time is on record


def test_save_and_load_round_trip_gives_identical_predictions(tiny_model, tmp_path):
    texts = ["Vladimir Putin was praised by Moscow.", "NATO said the talks would take place."]
    first = Labeler.from_pretrained(tiny_model).label(texts)
    model = StanceModel.from_pretrained(tiny_model)
    model.save_pretrained(tmp_path / "copy")
    from stance.lexical import LexicalModel

    lexical = LexicalModel.load(tiny_model, model.codebook)
    if lexical is not None:  # the lexical side is saved beside the network
        lexical.save(tmp_path / "copy")
    second = Labeler.from_pretrained(tmp_path / "copy").label(texts)
    prob_cols = [c for c in first.columns if c.startswith("p_")]
    np.testing.assert_allclose(first[prob_cols].to_numpy(float), second[prob_cols].to_numpy(float), atol=1e-6)


def test_same_seed_reproduces_the_same_model(tiny_data, codebook, tmp_path):
    from stance.train import TrainConfig, train

    config = TrainConfig(epochs=1, base="random", encoder_config=TINY_ENCODER, lora_r=2, seed=3, progress=False)
    recs = __import__("stance.data", fromlist=["read_records"]).read_records(tiny_data["train"], codebook)[:40]
    a = train(recs, [], codebook, config, log=lambda m: None).model.trainable_state()
    b = train(recs, [], codebook, config, log=lambda m: None).model.trainable_state()
    assert a.keys() == b.keys()
    for k in a:
        assert np.allclose(a[k].numpy(), b[k].numpy()), k


def test_fast_training_options_change_training_and_are_recorded(tiny_data, codebook, tmp_path):
    """No LoRA or attention dropout and bf16 autocast (the default model's speed settings): the
    encoder is built without those dropouts, the run differs from the plain one, stays seeded,
    and the folder records the settings and loads."""
    import torch

    from stance.data import read_records
    from stance.model import LoRALinear
    from stance.train import TrainConfig, train

    recs = read_records(tiny_data["train"], codebook)[:48]

    def run(**kw):
        config = TrainConfig(epochs=1, base="random", encoder_config=TINY_ENCODER, lora_r=2, seed=3,
                             progress=False, **kw)
        return train(recs, [], codebook, config, log=lambda m: None).model

    plain = run()
    fast = run(lora_dropout=0.0, attention_dropout=0.0, bf16=True)
    again = run(lora_dropout=0.0, attention_dropout=0.0, bf16=True)
    lora = [m for m in fast.modules() if isinstance(m, LoRALinear)]
    assert lora and all(isinstance(m.dropout, torch.nn.Identity) for m in lora)
    assert all(isinstance(m.dropout, torch.nn.Dropout) for m in plain.modules() if isinstance(m, LoRALinear))
    assert fast.encoder.config.attention_probs_dropout_prob == 0.0
    assert plain.encoder.config.attention_probs_dropout_prob == TINY_ENCODER.get("attention_probs_dropout_prob", 0.1)
    a, b, c = plain.trainable_state(), fast.trainable_state(), again.trainable_state()
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(b[k], c[k]) for k in b)
    fast.save_pretrained(tmp_path / "fast")
    config = json.loads((tmp_path / "fast" / "config.json").read_text())
    assert config["lora_dropout"] == 0.0 and config["attention_dropout"] == 0.0
    loaded = StanceModel.from_pretrained(tmp_path / "fast")
    assert all(torch.equal(loaded.trainable_state()[k], b[k]) for k in b)


def test_frozen_lower_layers_split_the_forward_pass_exactly(codebook):
    """With LoRA in the top layer only, the bottom layer and the embeddings stay the base
    model's, and lower() then upper() gives forward()'s logits, padding included."""
    import torch

    from stance.folder import ModelConfig
    from stance.model import LoRALinear

    encoder = dict(TINY_ENCODER, num_hidden_layers=3)
    model = StanceModel.create(codebook, ModelConfig(base="random", encoder_config=encoder, lora_r=2,
                                                     lora_layers=1, context_features=3))
    assert model.frozen_layers == 2
    lora = [n for n, m in model.encoder.named_modules() if isinstance(m, LoRALinear)]
    assert lora and all(n.startswith("encoder.layer.2.") for n in lora)
    tuned = [n for n, p in model.encoder.named_parameters() if p.requires_grad]
    assert tuned and all(n.startswith("encoder.layer.2.") for n in tuned)
    assert_split_forward_matches(model, codebook)
    with pytest.raises(ValueError, match="lora_layers must be between 1 and 3"):
        StanceModel.create(codebook, ModelConfig(base="random", encoder_config=encoder, lora_layers=4))


def test_training_with_frozen_lower_layers_uses_the_cache_and_round_trips(tiny_data, codebook, tmp_path):
    """Training with lora_layers caches the frozen layers' output per paragraph (equal to
    computing them in any batch), leaves those layers unchanged, and the saved folder loads
    with the same setting and the same predictions."""
    import torch

    from stance.encoding import ParagraphEncoder
    from stance.train import TrainConfig, lower_cache, set_seed, stack_cached, train

    encoder = dict(TINY_ENCODER, num_hidden_layers=3)
    recs = read_records(tiny_data["train"], codebook)[:48]
    config = TrainConfig(epochs=2, base="random", encoder_config=encoder, lora_r=2, seed=3, progress=False,
                         lora_layers=1)
    messages = []
    model = train(recs, [], codebook, config, log=messages.append).model
    assert any("2 frozen encoder layers once for 48 paragraphs" in m for m in messages)
    set_seed(3)  # as train() does before building the model: the same random base encoder
    base = StanceModel.create(codebook, model.config).state_dict()
    trained = model.state_dict()
    frozen = [k for k in base if k.startswith(("encoder.embeddings.", "encoder.encoder.layer.0.",
                                              "encoder.encoder.layer.1."))]
    assert frozen and all(torch.equal(trained[k], base[k]) for k in frozen)
    top = [k for k in base if k.startswith("encoder.encoder.layer.2.") and ("lora_b" in k or "LayerNorm" in k)]
    assert top and any(not torch.equal(trained[k], base[k]) for k in top)

    windows = ParagraphEncoder.for_model(model.config, codebook).encode([r.text for r in recs[:6]], max_windows=1)
    pe = ParagraphEncoder.for_model(model.config, codebook)
    cache = lower_cache(model, pe, windows, torch.float32, batch_size=4)
    assert [len(c) for c in cache] == [len(w.ids) for w in windows]
    batch = pe.collate(windows)
    with torch.no_grad():
        direct = model.lower(torch.from_numpy(batch["input_ids"]), torch.from_numpy(batch["attention_mask"]))
    stacked = stack_cached(cache, list(range(6)), batch["input_ids"].shape[1])
    real = torch.from_numpy(batch["attention_mask"]).bool()
    assert torch.allclose(stacked[real], direct[real], atol=1e-5)

    model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["lora_layers"] == 1
    loaded = StanceModel.from_pretrained(tmp_path / "m")
    assert loaded.frozen_layers == 2
    with torch.no_grad():
        args = [torch.from_numpy(batch[k]) for k in ("input_ids", "attention_mask", "actor_mask", "context")]
        model.eval()
        for a, b in zip(model(*args), loaded(*args)):
            assert torch.allclose(a, b, atol=1e-5)


def test_train_command_passes_the_speed_flags_to_training(tiny_data, tmp_path, monkeypatch):
    import stance.train
    from stance.cli import main

    seen = {}
    monkeypatch.setattr(stance.train, "train_to_folder", lambda *a, **kw: seen.setdefault("config", a[4]))
    base = ["train", "--train", str(tiny_data["train"]), "--dev", str(tiny_data["dev"])]
    assert main(base + ["--out", str(tmp_path / "a")]) == 0
    plain = seen.pop("config")
    assert (plain.lora_dropout, plain.attention_dropout, plain.bf16, plain.epochs, plain.lora_layers) == \
        (0.05, None, False, 6, None)
    assert main(base + ["--out", str(tmp_path / "b"), "--lora-dropout", "0", "--attention-dropout", "0",
                        "--bf16", "--epochs", "4", "--lora-layers", "3"]) == 0
    fast = seen.pop("config")
    assert (fast.lora_dropout, fast.attention_dropout, fast.bf16, fast.epochs, fast.lora_layers) == \
        (0.0, 0.0, True, 4, 3)


def test_train_command_rejects_lora_layers_beyond_the_encoder(tiny_data, tmp_path, capsys):
    from stance.cli import main

    code = main(["train", "--train", str(tiny_data["train"]), "--dev", str(tiny_data["dev"]),
                 "--out", str(tmp_path / "m"), "--lora-layers", "9"])
    assert code == 2
    assert "lora_layers must be between 1 and 6" in capsys.readouterr().err


def test_onnx_backends_agree_with_torch_across_padding(tiny_model, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model, folder)
    texts = [r["text"] for r in synthetic_records(40, seed=11)] + ["Kyiv said no.", "Short one about Trump."]
    torch_df = Labeler.from_pretrained(folder, backend="torch", batch_size=8).label(texts)
    default = Labeler.from_pretrained(folder, batch_size=8)
    assert default.backend_name == "onnx"  # labelling's default: the torch model's labels, faster
    onnx_df = default.label(texts)
    prob_cols = [c for c in torch_df.columns if c.startswith("p_")]
    np.testing.assert_allclose(torch_df[prob_cols].to_numpy(float), onnx_df[prob_cols].to_numpy(float), atol=2e-4)
    assert list((folder / "onnx").glob("*-fp32.onnx"))  # cached beside the model
    int8_df = Labeler.from_pretrained(folder, backend="onnx-int8", batch_size=8).label(texts)
    stance_cols = [c for c in torch_df.columns if c.startswith("stance_")]
    agree = (int8_df[stance_cols].to_numpy() == onnx_df[stance_cols].to_numpy()).mean()
    assert agree > 0.9
    # the exported graph uses ONNX Runtime's fused operators; with the calibration file training
    # writes, int8 smooths the FFN output projections and quantises them too (folders without the
    # file keep them fp32: tests/test_int8_calibration.py)
    import onnx

    ops = lambda kind: [n for n in onnx.load(str(next((folder / "onnx").glob(f"*-{kind}.onnx")))).graph.node]
    assert {"Attention", "SkipLayerNormalization", "EmbedLayerNormalization"} <= {n.op_type for n in ops("fp32")}
    int8 = ops("int8")
    fp32_ffn_out = [n.name for n in int8 if n.op_type == "MatMul" and n.name.endswith("output/dense/MatMul")]
    assert not fp32_ffn_out
    assert len([n for n in int8 if n.op_type == "Mul" and n.name.endswith("/output/dense/MatMul_smooth")]) == 2
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul", "QAttention") for n in int8)


def test_long_paragraphs_are_windowed_and_aggregated(tiny_model):
    labeler = Labeler.from_pretrained(tiny_model)
    long_text = "Vladimir Putin spoke at length about the economy and the harvest. " * 60
    df = labeler.label([long_text, "Kyiv said no."])
    assert df.loc[0, "windows"] > 1 and df.loc[1, "windows"] == 1
    probs = df.loc[0, [f"p_putin_{v}" for v in labeler.codebook.value_ids]].to_numpy(float)
    assert abs(probs.sum() - 1) < 1e-3


def test_model_folder_errors(tiny_model, tmp_path, codebook):
    with pytest.raises(ModelFolderError, match="model folder not found"):
        Labeler.from_pretrained(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(ModelFolderError, match="missing model.safetensors"):
        Labeler.from_pretrained(broken)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny_model, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ModelFolderError, match="corrupt weights"):
        Labeler.from_pretrained(corrupt)
    (corrupt / "config.json").write_text("{not json")
    with pytest.raises(ModelFolderError, match="corrupt config"):
        Labeler.from_pretrained(corrupt)
    other = Codebook.from_dict({"stance_values": ["favor", "against", "none"], "actors": [{"id": "x"}]})
    with pytest.raises(ModelFolderError, match="does not match the model"):
        Labeler.from_pretrained(tiny_model, codebook=other)
    edited = tmp_path / "edited"
    shutil.copytree(tiny_model, edited)
    text = (edited / "codebook.yaml").read_text().replace("id: west", "id: europe")
    (edited / "codebook.yaml").write_text(text)
    with pytest.raises(ModelFolderError, match="codebook was changed after training"):
        Labeler.from_pretrained(edited)


def test_cli_errors_are_messages_not_tracebacks(tiny_model, tmp_path, capsys):
    from stance.cli import main

    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "1", "text": "x", "stance": {"putin": "maybe"}}])
    assert main(["train", "--train", str(bad), "--dev", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1: illegal stance value 'maybe'" in err and "Traceback" not in err
    assert main(["evaluate", "--model", str(tmp_path / "none"), "--data", str(bad)]) == 2
    assert "model folder not found" in capsys.readouterr().err
    assert main(["train", "--train", str(bad), "--dev", str(bad), "--out", str(tiny_model)]) == 2
    assert "use --force" in capsys.readouterr().err


def test_evaluate_model_and_predictions(tiny_model, tiny_data, tmp_path, capsys):
    from stance.cli import main

    out = tmp_path / "scores.json"
    assert main(["evaluate", "--model", str(tiny_model), "--data", str(tiny_data["dev"]), "--n-boot", "50",
                 "--json-out", str(out)]) == 0
    printed = capsys.readouterr().out
    scores = json.loads(out.read_text())
    assert scores["n_paragraphs"] == 32 and "frames_macro_f1" in scores
    assert f"{scores['frames_macro_f1']['value']:.3f}" in printed
    # a predictions file equal to the gold scores perfectly
    assert main(["evaluate", "--pred", str(tiny_data["dev"]), "--gold", str(tiny_data["dev"]), "--n-boot", "20",
                 "--json-out", str(out)]) == 0
    perfect = json.loads(out.read_text())
    assert perfect["stance_macro_f1"]["value"] == 1.0 and perfect["reference_f1"]["value"] == 1.0


def test_a_researchers_codebook_trains_without_code_changes(tmp_path):
    from stance.train import TrainConfig, train_to_folder

    cb = Codebook.from_dict({"name": "mine", "stance_values": ["favor", "against", "none"],
                             "actors": [{"id": "nato", "name": "NATO", "aliases": ["NATO", "the alliance"]}],
                             "frames": [{"id": "war", "name": "War"}]})
    rows = []
    for i in range(24):
        v = ["favor", "against", "none"][i % 3]
        text = {"favor": "NATO was praised for a wise decision.", "against": "NATO was condemned for a failure.",
                "none": "NATO met on Tuesday."}[v]
        rows.append({"id": str(i), "text": text, "stance": {"nato": v}, "frames": ["war"] if i % 2 else []})
    path = write_jsonl(tmp_path / "mine.jsonl", rows)
    out = train_to_folder([path], [path], tmp_path / "m", cb,
                          TrainConfig(epochs=1, base="random", encoder_config=TINY_ENCODER, lora_r=2, progress=False),
                          n_boot=10, log=lambda m: None)
    df = Labeler.from_pretrained(out).label(["NATO was praised."])
    assert {"stance_nato", "p_nato_favor", "p_nato_against", "p_nato_none", "frame_war"} <= set(df.columns)


def test_partial_annotation_trains_and_labels_an_actor_no_record_annotates(tmp_path):
    """One target per text (as in SemEval): training skips the actors a record leaves out, an
    actor annotated nowhere is still labelled (from its description), and scoring skips the
    unannotated pairs."""
    from stance.metrics import score
    from stance.train import TrainConfig, train_to_folder

    cb = Codebook.from_dict({
        "name": "tweets", "stance_values": ["favor", "against", "none"], "annotation": "partial",
        "text_normalization": "social",
        "actors": [{"id": "nato", "name": "NATO", "aliases": ["NATO"]},
                   {"id": "un", "name": "United Nations", "aliases": ["UN"]},
                   {"id": "eu", "name": "European Union", "description": "never annotated", "aliases": ["EU"]}]})
    rows = []
    for i in range(36):
        actor = ["nato", "un"][i % 2]
        v = ["favor", "against", "none"][(i // 2) % 3]
        tag = {"nato": "#NATO", "un": "@UN"}[actor]
        text = {"favor": f"{tag} was praised for a wise decision", "against": f"{tag} was condemned for failure",
                "none": f"{tag} met on Tuesday"}[v]
        rows.append({"id": str(i), "text": text, "stance": {actor: v}})
    path = write_jsonl(tmp_path / "tweets.jsonl", rows)
    out = train_to_folder([path], [path], tmp_path / "m", cb,
                          TrainConfig(epochs=2, base="random", encoder_config=TINY_ENCODER, lora_r=2,
                                      progress=False, select_on="stance_pooled_f_avg", lexical_char_ngrams=(2, 4)),
                          n_boot=10, log=lambda m: None)
    labeler = Labeler.from_pretrained(out)
    assert labeler.codebook.partial and labeler.codebook.text_normalization == "social"
    df = labeler.label(["#EU was praised", "@NATO was condemned"])
    assert set(df["stance_eu"]) <= {"favor", "against", "none"}
    assert ((df[["p_eu_favor", "p_eu_against", "p_eu_none"]].sum(axis=1) - 1.0).abs() < 1e-3).all()
    records = read_records(path, cb)
    result = score(records, labeler.predict_records(records), cb, n_boot=0)
    assert result["stance"]["eu"]["n"] == 0 and result["stance"]["nato"]["n"] == 18
    assert result["stance_pooled_f_avg"]["value"] > 0.5  # the tiny model learns the templates


def test_dev_is_scored_from_its_cached_frozen_layers_as_labelling_scores_it(tiny_data, codebook, monkeypatch):
    """With frozen lower layers, dev's frozen-layer output is computed once, not every epoch, and
    the dev probabilities from it are the labeller's: every window of a long paragraph, document
    context, aggregation."""
    from stance.encoding import ParagraphEncoder
    from stance.inference import Predictor, TorchBackend
    from stance.train import CachedDev, TrainConfig, train

    recs = read_records(tiny_data["train"], codebook)[:40]
    dev = read_records(tiny_data["dev"], codebook)[:24]
    config = TrainConfig(epochs=2, base="random", encoder_config=dict(TINY_ENCODER, num_hidden_layers=3), lora_r=2,
                         seed=3, progress=False, lora_layers=1, max_length=24, lexical=False, document_context=True)
    calls = {"lower": 0, "forward": 0}
    lower, forward = StanceModel.lower, StanceModel.forward

    def counted(name, fn):
        def wrapper(self, *a, **k):
            calls[name] += 1
            return fn(self, *a, **k)
        return wrapper

    monkeypatch.setattr(StanceModel, "lower", counted("lower", lower))
    monkeypatch.setattr(StanceModel, "forward", counted("forward", forward))
    train(recs, dev, codebook, config, log=lambda m: None)
    two_epochs = dict(calls)
    calls.update(lower=0, forward=0)
    model = train(recs, dev, codebook, TrainConfig(**{**config.__dict__, "epochs": 3}), log=lambda m: None).model
    assert calls == two_epochs and calls["forward"] == 0  # a third epoch ran no frozen layer again

    pe = ParagraphEncoder.for_model(model.config, codebook)
    cached = CachedDev(model, pe, dev)
    assert len(cached.windows) > len(dev)  # some dev paragraphs span several windows
    got = cached.probabilities(model)
    want = Predictor(pe, TorchBackend(model)).predict([r.text for r in dev], doc_ids=[r.doc_id for r in dev])
    assert got.stance.shape == want.stance.shape and np.array_equal(got.windows, want.windows)
    assert np.allclose(got.stance, want.stance, atol=1e-5) and np.allclose(got.frames, want.frames, atol=1e-5)


def test_with_bf16_the_training_cache_runs_in_bf16_and_the_dev_cache_in_fp32(tiny_data, codebook, monkeypatch):
    import torch

    import stance.train as train_module
    from stance.train import TrainConfig, train

    seen = []
    real = train_module.lower_cache

    def recording(model, encoder, windows, dtype, *a, **k):
        seen.append((len(windows), torch.is_autocast_enabled("cpu"), dtype))
        return real(model, encoder, windows, dtype, *a, **k)

    monkeypatch.setattr(train_module, "lower_cache", recording)
    recs = read_records(tiny_data["train"], codebook)[:32]
    dev = read_records(tiny_data["dev"], codebook)[:8]
    config = TrainConfig(epochs=1, base="random", encoder_config=dict(TINY_ENCODER, num_hidden_layers=3), lora_r=2,
                         seed=3, progress=False, lora_layers=1, lexical=False, bf16=True)
    train(recs, dev, codebook, config, log=lambda m: None)
    assert seen == [(32, True, torch.bfloat16), (8, False, torch.float32)]


def test_the_training_command_fits_each_baseline_once_for_both_splits(tiny_data, codebook, tmp_path, monkeypatch):
    from stance.baselines import BASELINES, run_baselines
    from stance.train import TrainConfig, train_to_folder

    fits = []
    for name, cls in BASELINES.items():
        real = cls.fit
        monkeypatch.setattr(cls, "fit", lambda self, train, _real=real, _name=name: (fits.append(_name), _real(self, train))[1])
    config = TrainConfig(epochs=1, base="random", encoder_config=TINY_ENCODER, lora_r=2, seed=3, progress=False,
                         lexical=False)
    out = train_to_folder([tiny_data["train"]], [tiny_data["dev"]], tmp_path / "m", codebook, config,
                          test_paths=[tiny_data["dev"]], n_boot=10, log=lambda m: None)
    assert sorted(fits) == sorted(BASELINES)  # once each, though dev and test are both scored
    saved = json.loads((out / "evaluation.json").read_text())["evaluations"]
    records = read_records(tiny_data["dev"], codebook)
    fresh = run_baselines(read_records(tiny_data["train"], codebook), records, codebook, n_boot=10, seed=3)
    for split in ("dev split", "test split"):
        for name in BASELINES:
            assert saved[split][name]["stance_macro_f1"] == pytest.approx(fresh[name]["stance_macro_f1"])
