"""Execute the notebooks in place with their full default settings and save them with outputs.

    python notebooks/run_all.py                      # all three, in place, with outputs
    python notebooks/run_all.py 01 03                # only the notebooks whose names start so
    python notebooks/run_all.py --set N_BOOT=200     # override parameters (kept in the notebook
                                                     # as an "injected-parameters" cell)
    python notebooks/run_all.py --check              # are all notebooks saved with outputs?
    python notebooks/run_all.py --clear              # strip outputs and injected cells

Run it from the repository's environment (the one `pip install -e ".[notebooks]"` set up): the
notebooks run in a Jupyter kernel of this very interpreter, whatever other kernels are
installed, and need no network. ``tests/test_notebooks.py`` uses the same functions to run the
notebooks on small settings.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parent
NOTEBOOKS = ("01_evaluate_default_model.ipynb", "02_analyse_a_corpus.ipynb", "03_your_own_codebook.ipynb")
INJECTED_TAG = "injected-parameters"
KERNEL_NAME = "python3"


@contextlib.contextmanager
def this_interpreter_kernel():
    """Make the kernel ``python3`` run this interpreter, whatever kernel specs are installed.

    A kernel spec in a folder named by ``JUPYTER_PATH`` takes precedence over the user's and the
    system's; the environment also keeps the run offline.
    """
    with tempfile.TemporaryDirectory(prefix="stance-kernel-") as tmp:
        spec = Path(tmp) / "kernels" / KERNEL_NAME
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python 3 ({sys.prefix})", "language": "python",
            "metadata": {"debugger": False}}))
        env = {"JUPYTER_PATH": os.pathsep.join([tmp, *filter(None, [os.environ.get("JUPYTER_PATH")])]),
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "PYDEVD_DISABLE_FILE_VALIDATION": "1", "TOKENIZERS_PARALLELISM": "false"}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def parameter_cell_index(nb) -> int:
    found = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(found) != 1:
        raise ValueError(f"a notebook needs exactly one cell tagged 'parameters', found {len(found)}")
    return found[0]


def strip(nb):
    """Remove injected parameter cells and every output and execution count."""
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs = []
            c.execution_count = None
            c.metadata.pop("execution", None)
    return nb


def inject(nb, params: dict):
    """Put a cell assigning ``params`` right after the parameters cell (as papermill does)."""
    from nbformat.v4 import new_code_cell

    if not params:
        return nb
    lines = ["# Parameters injected for this run"] + [f"{k} = {v!r}" for k, v in params.items()]
    cell = new_code_cell("\n".join(lines), metadata={"tags": [INJECTED_TAG]})
    cell["id"] = INJECTED_TAG
    nb.cells.insert(parameter_cell_index(nb) + 1, cell)
    return nb


def execute(path: str | Path, params: dict | None = None, workdir: str | Path | None = None,
            timeout: int = 1200):
    """Run a notebook (a fresh copy of ``path`` without outputs) and return it with outputs.

    ``params`` override the parameters cell; ``workdir`` is the kernel's working folder (default:
    the notebook's own folder). A failing cell raises ``nbclient.exceptions.CellExecutionError``.
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = inject(strip(nbformat.read(path, as_version=4)), dict(params or {}))
    with this_interpreter_kernel():
        client = NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=timeout, record_timing=False,
                                resources={"metadata": {"path": str(workdir or path.parent)}})
        client.execute()
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python",
                                 "name": KERNEL_NAME}
    return nb


def problems(nb) -> list[str]:
    """What is missing from a notebook saved with outputs: unexecuted cells, errors, figures."""
    out, images = [], 0
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code" or not c.source.strip():
            continue
        if c.execution_count is None:
            out.append(f"cell {i} was not executed")
        for o in c.get("outputs", []):
            if o.get("output_type") == "error":
                out.append(f"cell {i} has an error output: {o.get('ename')}: {o.get('evalue')}")
            images += "image/png" in o.get("data", {})
    if images == 0:
        out.append("no figure in the outputs")
    return out


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv=None) -> int:
    import nbformat

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("only", nargs="*", help="run only notebooks whose file names start with these")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a parameter (a Python literal, else a string)")
    p.add_argument("--check", action="store_true", help="only check the saved notebooks have outputs")
    p.add_argument("--clear", action="store_true", help="only strip outputs and injected cells")
    args = p.parse_args(argv)
    names = [n for n in NOTEBOOKS if not args.only or any(n.startswith(o) for o in args.only)]
    if not names:
        p.error(f"no notebook matches {args.only}; the notebooks are {', '.join(NOTEBOOKS)}")
    params = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            p.error(f"--set needs NAME=VALUE, got {item!r}")
        params[key] = _value(value)

    status = 0
    for name in names:
        path = NOTEBOOK_DIR / name
        if args.check:
            found = problems(nbformat.read(path, as_version=4))
            print(f"{name}: {'ok' if not found else '; '.join(found)}")
            status |= bool(found)
            continue
        if args.clear:
            nbformat.write(strip(nbformat.read(path, as_version=4)), path)
            print(f"{name}: outputs cleared")
            continue
        started = time.time()
        print(f"{name}: running ...", flush=True)
        nb = execute(path, params)
        nbformat.write(nb, path)
        print(f"{name}: saved with outputs in {time.time() - started:.0f} s", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
