"""The int8 backend's fp32 recheck: close calls are decided again in fp32, the rest stay int8."""
import shutil

import numpy as np
import pytest

from conftest import synthetic_records
from stance import Labeler
from stance.errors import StanceError
from stance.inference import INT8_RECHECK, Probabilities, close_calls
from stance.labeling import run_label


def test_close_calls_by_hand(codebook):
    n_a, n_v = len(codebook.actors), len(codebook.stance_values)
    stance = np.zeros((4, n_a, n_v), np.float32)
    stance[:, :, 0] = 1.0                              # every actor certain ...
    stance[1, 2, :2] = [0.52, 0.48]                    # ... but paragraph 1, actor 2: margin 0.04
    stance[2, 0, :3] = [0.30, 0.41, 0.29]              # paragraph 2, actor 0: margin 0.11
    frames = np.zeros((4, len(codebook.frames)), np.float32)
    thresholds = {codebook.frame_ids[0]: 0.4}
    frames[3, 0] = 0.43                                # 0.03 above its threshold of 0.4
    frames[2, 1] = 0.62                                # 0.12 above the default 0.5
    probs = Probabilities(frames, stance, np.ones(4, np.int64))
    assert close_calls(probs, codebook, thresholds, 0.05).tolist() == [False, True, False, True]
    assert close_calls(probs, codebook, thresholds, 0.115).tolist() == [False, True, True, True]
    assert close_calls(probs, codebook, thresholds, 0.105).tolist() == [False, True, False, True]
    assert close_calls(probs, codebook, thresholds, 0.02).tolist() == [False, False, False, False]


@pytest.fixture(scope="module")
def folder(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("recheck") / "m"
    shutil.copytree(tiny_model, out)
    return out


TEXTS = [r["text"] for r in synthetic_records(40, seed=5)] + ["Kyiv said no.", "Short one about Trump."]


def _min_margins(probs, codebook, thresholds):
    top2 = np.sort(probs.stance, -1)[..., -2:]
    cut = np.array([thresholds.get(f, 0.5) for f in codebook.frame_ids])
    return np.minimum((top2[..., 1] - top2[..., 0]).min(1), np.abs(probs.frames - cut).min(1))


def test_close_calls_are_decided_in_fp32_and_the_rest_stay_int8(folder):
    quiet = dict(progress=False, log=lambda m: None)
    fp32 = Labeler.from_pretrained(folder, backend="onnx", **quiet).predict(TEXTS)
    plain_labeler = Labeler.from_pretrained(folder, backend="onnx-int8", recheck=0, **quiet)
    plain = plain_labeler.predict(TEXTS)
    assert plain_labeler.predictor._recheck_backend is None  # never opened when it is off
    assert plain.rechecked is None and not np.allclose(plain.stance, fp32.stance, atol=1e-6)

    # a margin that catches about half the paragraphs of this tiny model
    margin = float(np.median(_min_margins(plain, plain_labeler.codebook, plain_labeler.thresholds)))
    labeler = Labeler.from_pretrained(folder, backend="onnx-int8", recheck=margin, **quiet)
    got = labeler.predict(TEXTS)
    close = got.rechecked
    assert 0 < close.sum() < len(TEXTS)
    np.testing.assert_array_equal(close, close_calls(plain, labeler.codebook, labeler.thresholds, margin))
    np.testing.assert_allclose(got.stance[close], fp32.stance[close], atol=1e-6)
    np.testing.assert_allclose(got.frames[close], fp32.frames[close], atol=1e-6)
    np.testing.assert_array_equal(got.stance[~close], plain.stance[~close])
    np.testing.assert_array_equal(got.frames[~close], plain.frames[~close])
    assert labeler.predictor.counts == {"paragraphs": len(TEXTS), "rechecked": int(close.sum())}


def test_recheck_defaults_and_bad_margins(folder):
    quiet = dict(progress=False, log=lambda m: None)
    assert Labeler.from_pretrained(folder, backend="onnx-int8", **quiet).predictor.recheck_margin == INT8_RECHECK
    for backend in ("torch", "onnx"):  # exact backends have nothing to recheck
        assert Labeler.from_pretrained(folder, backend=backend, recheck=0.2, **quiet).predictor.recheck_margin == 0
    for bad in (-0.1, 1.0):
        with pytest.raises(StanceError, match="--int8-recheck"):
            Labeler.from_pretrained(folder, backend="onnx-int8", recheck=bad, **quiet)


def test_stance_label_reports_the_rechecked_share(folder, tmp_path):
    inp = tmp_path / "in.txt"
    inp.write_text("\n\n".join(TEXTS[:12]) + "\n", encoding="utf-8")
    lines = []
    run_label([str(inp)], str(tmp_path / "out.jsonl"), model=folder, backend="onnx-int8", recheck=0.9,
              progress=False, log=lines.append)
    assert any("12 of 12 paragraphs" in line and "decided in fp32" in line for line in lines), lines


def test_ray_workers_get_the_margin(folder):
    pytest.importorskip("ray")
    from stance.distributed import LabelWorker, _worker_args

    args = _worker_args(folder, "onnx-int8", 8, 1, recheck=0.3)
    assert LabelWorker(**args).labeler.predictor.recheck_margin == 0.3
    assert LabelWorker(**_worker_args(folder, "onnx-int8", 8, 1)).labeler.predictor.recheck_margin == INT8_RECHECK
