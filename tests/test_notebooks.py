"""The notebooks under notebooks/ run from start to end (on small settings) in a fresh kernel.

Each notebook is executed with nbclient in a kernel of this interpreter, offline, from a copy
without outputs, with small parameters put after its ``parameters`` cell; outputs go to a
temporary folder. A notebook that needs the shipped model or the seed corpus is skipped, with the
reason, only when they are missing from the repository.

``STANCE_NOTEBOOK_ROOT=/path`` runs them against another folder laid out like the repository
(``models/default``, ``seeds/corpus``, ``seeds/agreement``, ``seeds/codebook.yaml``), for
example stand-in data during development.
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
DATA_ROOT = Path(os.environ.get("STANCE_NOTEBOOK_ROOT") or ROOT)

_spec = importlib.util.spec_from_file_location("run_all", NOTEBOOK_DIR / "run_all.py")
run_all = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_all)

# Small settings: every section runs, on a slice of the data; the three together take a few minutes
# on two CPU cores.
SMALL = {
    "01_evaluate_default_model.ipynb": dict(N_BOOT=50, MAX_TEST_DOCS=12, MAX_TRAIN_DOCS=60, N_WORST=5),
    "02_analyse_a_corpus.ipynb": dict(N_BOOT=50, MAX_DOCS=50, TOP_OUTLETS=8, MIN_DOCS=2, MIN_REFS=3),
    "03_your_own_codebook.ipynb": dict(FAST=True, N_PARAGRAPHS=160, EPOCHS=1, N_BOOT=20),
}
NEEDS = {
    "01_evaluate_default_model.ipynb": ("models/default/model.safetensors", "seeds/corpus/test.jsonl"),
    "02_analyse_a_corpus.ipynb": ("models/default/model.safetensors", "seeds/corpus/train.jsonl"),
    "03_your_own_codebook.ipynb": ("seeds/corpus/train.jsonl",),
}
# at least this many figures in each notebook's outputs
FIGURES = {"01_evaluate_default_model.ipynb": 5, "02_analyse_a_corpus.ipynb": 8, "03_your_own_codebook.ipynb": 1}

pytestmark = pytest.mark.notebooks


def test_every_notebook_is_listed():
    on_disk = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
    assert on_disk == sorted(SMALL) == sorted(run_all.NOTEBOOKS)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_shape(name):
    """One parameters cell whose names the small settings override; the package's public API only."""
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nbformat.validate(nb)
    params = nb.cells[run_all.parameter_cell_index(nb)].source
    defined = set(re.findall(r"^([A-Z_][A-Z0-9_]*)\s*=", params, flags=re.M))
    assert set(SMALL[name]) <= defined, set(SMALL[name]) - defined
    assert {"ROOT"} <= defined
    assert nb.metadata["kernelspec"]["name"] == run_all.KERNEL_NAME
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    private = re.findall(r"(?:from\s+stance[\w.]*\s+import[^\n]*\b_\w+|stance(?:\.\w+)*\._\w+)", code)
    assert not private, f"{name} uses private names of the package: {private}"
    imports = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", code, flags=re.M)
    allowed = {"stance", "matplotlib", "numpy", "pandas", "IPython", "sklearn", "yaml", "pathlib",
               "warnings", "random", "re", "time", "collections", "json"}
    assert {i.split(".")[0] for i in imports} <= allowed, set(i.split(".")[0] for i in imports) - allowed


def test_kernel_is_this_interpreter(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print(sys.executable)")])
    path = tmp_path / "which.ipynb"
    nbformat.write(nb, path)
    out = run_all.execute(path, workdir=tmp_path, timeout=120)
    assert out.cells[0].outputs[0]["text"].strip() == sys.executable


@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_runs(name, tmp_path):
    missing = [n for n in NEEDS[name] if not (DATA_ROOT / n).exists()]
    if missing:
        pytest.skip(f"{name} needs {', '.join(missing)} under {DATA_ROOT}, which is missing")
    params = dict(ROOT=str(DATA_ROOT), **SMALL[name])
    if name.startswith(("02", "03")):
        params["OUT_DIR"] = str(tmp_path / "out")
    started = time.time()
    nb = run_all.execute(NOTEBOOK_DIR / name, params, workdir=tmp_path, timeout=600)
    nbformat.write(nb, tmp_path / name)  # kept for a look after a failure
    problems = run_all.problems(nb)
    assert not problems, problems
    figures = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
                  for o in c.outputs)
    assert figures >= FIGURES[name], f"{name}: {figures} figures in the outputs"
    tracebacks = [o["text"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
                  if o.get("name") == "stderr" and ("Traceback" in o["text"] or "Warning" in o["text"])]
    assert not tracebacks, tracebacks
    print(f"{name}: {time.time() - started:.0f} s")
