"""int8 calibration: activation ranges recorded at training time and SmoothQuant of the FFN output
projections, on the tiny random encoder."""
import json
import shutil

import numpy as np
import pytest

from conftest import synthetic_records
from stance.calibration import (CALIBRATION_FILE, activation_ranges, load_activation_ranges,
                                record_activation_ranges, save_activation_ranges)
from stance.errors import StanceError
from stance.inference import _fingerprint, onnx_path, quantize_int8, smooth_ffn_outputs
from stance.model import StanceModel

QUIET = lambda m: None  # noqa: E731
TEXTS = [r["text"] for r in synthetic_records(24, seed=13)] + ["Kyiv said no.", "Short one about Trump."]


def _copy(tiny_model, tmp_path, name="m"):
    folder = tmp_path / name
    shutil.copytree(tiny_model, folder, ignore=shutil.ignore_patterns("onnx"))
    return folder


def _batches(folder, texts, size=8):
    """Batches as labelling makes them, with only the inputs the exported graph takes."""
    from stance import Labeler
    from stance.encoding import length_sorted_batches

    labeler = Labeler.from_pretrained(folder, backend="onnx", log=QUIET)
    windows = labeler.encoder.encode(texts)
    return [labeler.encoder.collate([windows[i] for i in idx]) for idx in length_sorted_batches(windows, size)]


def _run(model_or_path, batches, extra_outputs=()):
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_or_path)) if not isinstance(model_or_path, onnx.ModelProto) else model_or_path
    for name in extra_outputs:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}
    return [session.run(None, {k: v for k, v in b.items() if k in inputs}) for b in batches]


def _ffn_out(graph, op_type="MatMul"):
    return [n for n in graph.node if n.op_type == op_type and n.name.endswith("/output/dense/MatMul")
            and "attention" not in n.name]


def test_training_writes_the_calibration_file(tiny_model, tiny_data):
    ranges = load_activation_ranges(tiny_model / CALIBRATION_FILE)
    assert sorted(ranges) == [0, 1]  # one per layer of the tiny encoder
    for r in ranges.values():
        assert r.shape == (64,) and r.dtype == np.float32  # the tiny encoder's intermediate width
        assert np.isfinite(r).all() and (r > 0).all()
    inputs = load_activation_ranges(tiny_model / CALIBRATION_FILE, "intermediate")
    assert sorted(inputs) == [0, 1] and all(r.shape == (32,) for r in inputs.values())  # the hidden width
    # recorded from the training texts: recording them again from the saved folder gives the same
    texts = [json.loads(line)["text"] for line in tiny_data["train"].read_text().splitlines() if line.strip()]
    again = activation_ranges(StanceModel.from_pretrained(tiny_model), texts)
    for layer in ranges:
        np.testing.assert_allclose(again[layer], ranges[layer], rtol=1e-5)
    fewer = activation_ranges(StanceModel.from_pretrained(tiny_model), texts[:3])
    assert any(not np.allclose(fewer[k], ranges[k]) for k in ranges)  # the texts do matter


def test_calibration_file_round_trips_as_safetensors(tmp_path):
    rng = np.random.default_rng(0)
    ranges = {0: rng.random(16, dtype=np.float32), 3: rng.random(16, dtype=np.float32) * 40}
    path = save_activation_ranges(ranges, tmp_path / CALIBRATION_FILE, n_texts=7)
    raw = path.read_bytes()
    header = int.from_bytes(raw[:8], "little")
    meta = json.loads(raw[8:8 + header])  # a safetensors header, not a pickle
    assert set(meta) == {"__metadata__", "layer.0", "layer.3"}
    assert json.loads(meta["__metadata__"]["int8_calibration"])["n_texts"] == 7
    # the same ranges give the same bytes, so a retrain reproduces the folder exactly
    assert save_activation_ranges(ranges, tmp_path / "again.safetensors", n_texts=7).read_bytes() == raw
    back = load_activation_ranges(path)
    assert sorted(back) == [0, 3]
    for k in ranges:
        np.testing.assert_array_equal(back[k], ranges[k])
    (tmp_path / "bad.safetensors").write_bytes(raw[:40])
    with pytest.raises(StanceError, match="cannot read"):
        load_activation_ranges(tmp_path / "bad.safetensors")


def test_ranges_are_the_max_of_the_ffn_output_projections_input(tiny_model, tmp_path):
    folder = _copy(tiny_model, tmp_path)
    fp32 = onnx_path(folder, "onnx", log=QUIET)
    import onnx

    ffn = sorted(_ffn_out(onnx.load(str(fp32), load_external_data=False).graph), key=lambda n: n.name)
    assert len(ffn) == 2
    # one batch, so that padding is the same in both runs
    outs = _run(fp32, _batches(folder, TEXTS, size=64), [n.input[0] for n in ffn])[0][2:]
    want = activation_ranges(StanceModel.from_pretrained(folder), TEXTS, batch_size=64)
    for layer, x in enumerate(outs):
        np.testing.assert_allclose(np.abs(x).reshape(-1, x.shape[-1]).max(0), want[layer], rtol=1e-4, atol=1e-5)
    # and the input projections' ranges, the max of what their MatMuls read
    graph = onnx.load(str(fp32), load_external_data=False).graph
    ups = sorted((n for n in graph.node if n.op_type == "MatMul" and n.name.endswith("/intermediate/dense/MatMul")),
                 key=lambda n: n.name)
    assert len(ups) == 2
    xs = _run(fp32, _batches(folder, TEXTS, size=64), [n.input[0] for n in ups])[0][2:]
    want = activation_ranges(StanceModel.from_pretrained(folder), TEXTS, batch_size=64, which="intermediate")
    for layer, x in enumerate(xs):
        np.testing.assert_allclose(np.abs(x).reshape(-1, x.shape[-1]).max(0), want[layer], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("alpha", [0.5, 0.8])
def test_smoothing_leaves_the_fp32_graph_unchanged(tiny_model, tmp_path, alpha):
    import onnx
    from onnx import numpy_helper

    folder = _copy(tiny_model, tmp_path)
    fp32 = onnx_path(folder, "onnx", log=QUIET)
    model = onnx.load(str(fp32))
    ranges = load_activation_ranges(folder / CALIBRATION_FILE)
    ranges = {k: v * np.linspace(0.2, 5.0, len(v), dtype=np.float32) for k, v in ranges.items()}  # uneven s
    smoothed = smooth_ffn_outputs(model, ranges, alpha)
    assert len(smoothed) == 2
    muls = [n for n in model.graph.node if n.op_type == "Mul" and n.name.endswith("_smooth")]
    assert len(muls) == 2
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    before = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(fp32)).graph.initializer}
    for n in _ffn_out(model.graph):  # the weights really were rescaled
        assert n.input[1] not in before and not np.allclose(inits[n.input[1]], before[_orig_weight(fp32, n.name)])
    onnx.checker.check_model(model)
    batches = _batches(folder, TEXTS)
    for ref, got in zip(_run(fp32, batches), _run(model, batches)):
        for a, b in zip(ref, got):
            np.testing.assert_allclose(b, a, atol=1e-4)


def _orig_weight(fp32, name):
    import onnx

    return next(n.input[1] for n in onnx.load(str(fp32), load_external_data=False).graph.node if n.name == name)


def test_smoothing_handles_shared_and_transposed_weights():
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    w = rng.normal(size=(6, 3)).astype(np.float32)
    wt = rng.normal(size=(3, 6)).astype(np.float32)  # stored (out, in), read through a Transpose
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y0"], name="/enc/layer.0/output/dense/MatMul"),
             helper.make_node("MatMul", ["x", "w"], ["y1"], name="/head/MatMul"),  # shares w
             helper.make_node("Transpose", ["wt"], ["wt_T"], name="/enc/layer.1/output/dense/Transpose", perm=[1, 0]),
             helper.make_node("MatMul", ["x", "wt_T"], ["y2"], name="/enc/layer.1/output/dense/MatMul")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 6])],
                              [helper.make_tensor_value_info(y, TensorProto.FLOAT, None) for y in ("y0", "y1", "y2")],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(wt, "wt")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = (rng.normal(size=(5, 6)) * np.array([1, 30, 1, 0.1, 1, 8])).astype(np.float32)
    run = lambda m: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    ref = run(model)
    ranges = {i: np.abs(x).max(0) for i in (0, 1)}
    assert len(smooth_ffn_outputs(model, ranges, 0.8)) == 2
    names = {t.name for t in model.graph.initializer}
    assert "w" in names and "wt" not in names  # still read by /head/MatMul; the transposed one replaced
    assert "Transpose" not in {n.op_type for n in model.graph.node}
    head = next(n for n in model.graph.node if n.name == "/head/MatMul")
    assert list(head.input) == ["x", "w"]
    for a, b in zip(ref, run(model)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    with pytest.raises(StanceError, match="does not fit"):
        smooth_ffn_outputs(model, {0: np.ones(4, np.float32)}, 0.8)


def test_quantisation_with_and_without_the_calibration_file(tiny_model, tmp_path):
    import onnx

    folder = _copy(tiny_model, tmp_path)
    old = _copy(tiny_model, tmp_path, "old")
    (old / CALIBRATION_FILE).unlink()
    ops = lambda p: onnx.load(str(p), load_external_data=False).graph
    # a folder from before the file: the FFN output projections stay fp32, nothing is smoothed
    g_old = ops(onnx_path(old, "onnx-int8", log=QUIET))
    assert len(_ffn_out(g_old)) == 2
    assert not [n for n in g_old.node if n.name.endswith("_smooth")]
    # with it: smoothed and quantised, every MatMul of the encoder int8
    int8 = onnx_path(folder, "onnx-int8", log=QUIET)
    g_new = ops(int8)
    assert not _ffn_out(g_new)
    smooth = [n.name for n in g_new.node if n.op_type == "Mul" and n.name.endswith("_smooth")]
    # the input and the output projection of each of the two layers
    assert sorted(x.split("/")[-3] for x in smooth) == ["intermediate", "intermediate", "output", "output"]
    assert len([n for n in g_new.node if "output/dense/MatMul" in n.name and "attention" not in n.name
                and n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul")]) == 2
    # and it still labels like fp32
    batches = _batches(folder, TEXTS)
    fp32 = onnx_path(folder, "onnx", log=QUIET)
    ref, got = _run(fp32, batches), _run(int8, batches)
    agree = np.concatenate([(a[1].argmax(-1) == b[1].argmax(-1)).ravel() for a, b in zip(ref, got)]).mean()
    assert agree > 0.9
    # a file with the output projections' ranges only (format 1) smooths only those
    outputs_only = _copy(tiny_model, tmp_path, "outputs-only")
    save_activation_ranges(load_activation_ranges(folder / CALIBRATION_FILE), outputs_only / CALIBRATION_FILE)
    assert load_activation_ranges(outputs_only / CALIBRATION_FILE, "intermediate") == {}
    g_out = ops(onnx_path(outputs_only, "onnx-int8", log=QUIET))
    assert len([n for n in g_out.node if n.op_type == "Mul" and n.name.endswith("_smooth")]) == 2
    # quantize_int8 without a calibration file matches the folder-without-it path
    plain = tmp_path / "plain.onnx"
    quantize_int8(fp32, plain, None)
    assert len(_ffn_out(ops(plain))) == 2


def test_fingerprint_follows_the_calibration_file(tiny_model, tmp_path):
    folder = _copy(tiny_model, tmp_path)
    path = folder / CALIBRATION_FILE
    original = path.read_bytes()
    with_file = _fingerprint(folder)
    ranges = load_activation_ranges(path)
    save_activation_ranges({k: v * 2 for k, v in ranges.items()}, path)
    changed = _fingerprint(folder)
    path.unlink()
    without = _fingerprint(folder)
    assert len({with_file, changed, without}) == 3
    path.write_bytes(original)
    assert _fingerprint(folder) == with_file
    # and the cached int8 graph is looked for under the new key
    record_activation_ranges(folder, TEXTS[:4])
    assert _fingerprint(folder) not in (with_file, without)
