"""``stance label``: label a corpus in chunks, with output that survives a killed run.

How a run stays safe to kill: each chunk of labelled rows is appended to the output (JSONL or
CSV) or written as its own Parquet part, flushed to disk, and only then is the checkpoint file
``OUTPUT.progress.json`` replaced atomically with the count of input items consumed. ``--resume``
cuts the output back to the last checkpoint (dropping a half-written chunk) and skips that many
items, so every row is written exactly once. The checkpoint is removed when the run completes.

``--engine ray`` (``stance/distributed.py``) labels the same chunks on Ray workers and reuses the
pieces below the local engine: the output row and columns, the writers, the summary.
"""
from __future__ import annotations

import csv
import functools
import io
import json
import os
import sys
import time
from pathlib import Path

from .encoding import DocumentContext
from .errors import StanceError
from .inputs import TABLE_SUFFIXES, InputError, ReadOptions, Stats, expand_inputs, read_items, table_columns

FORMATS = ("jsonl", "csv", "parquet")
_CSV_DANGER = ("=", "+", "-", "@", "\t", "\r")


def output_format(path: Path, fmt: str | None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise StanceError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson", "json"):
        return "jsonl"
    if suffix in ("csv", "parquet"):
        return suffix
    raise StanceError(f"{path}: cannot tell the output format from the extension; use .jsonl, .csv or "
                      f".parquet, or pass --format")


def csv_safe(value):
    """Spreadsheets run cells that start with = + - @ as formulas; prefix such text with '."""
    if isinstance(value, str) and value.startswith(_CSV_DANGER):
        return "'" + value
    return value


class JsonState:
    """A run's small JSON state file, replaced atomically so that a reader never sees half of it."""

    what = "state file"
    indent = None

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, OSError):
            raise StanceError(f"{self.path}: the {self.what} is unreadable; start again with --force") from None

    def save(self, state: dict) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(state, indent=self.indent), encoding="utf-8")
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class Checkpoint(JsonState):
    what = "checkpoint"

    def __init__(self, output: Path):
        super().__init__(output.with_name(output.name + ".progress.json"))


class AppendWriter:
    """JSONL or CSV appended chunk by chunk; ``size`` is the byte length after the last chunk."""

    def __init__(self, path: Path, fmt: str, columns: list[str], nested, resume_bytes: int | None,
                 header: bool = True):
        self.path, self.fmt, self.columns, self.nested = path, fmt, columns, nested
        if resume_bytes is None:
            self.file = open(path, "wb")
            if fmt == "csv" and header:
                self._write(self._csv_lines([dict(zip(columns, columns))]))
        else:
            self.file = open(path, "r+b")
            self.file.truncate(resume_bytes)
            self.file.seek(resume_bytes)

    def _csv_lines(self, rows) -> bytes:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
        for r in rows:
            w.writerow({k: csv_safe(v) for k, v in r.items()})
        return buf.getvalue().encode("utf-8")

    def _write(self, data: bytes) -> None:
        self.file.write(data)
        self.file.flush()
        os.fsync(self.file.fileno())

    def write(self, rows: list[dict]) -> None:
        if self.fmt == "csv":
            self._write(self._csv_lines(rows))
        else:
            self._write("".join(json.dumps(self.nested(r), ensure_ascii=False, default=str) + "\n"
                                for r in rows).encode("utf-8"))

    def append_file(self, path: Path) -> None:
        """Append another file's bytes as they are (shards written by this writer with no header)."""
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                self.file.write(block)
        self.file.flush()
        os.fsync(self.file.fileno())

    @property
    def size(self) -> int:
        return self.file.tell()

    def finish(self) -> None:
        self.file.close()


class _ParquetWriter:
    """Parquet parts in ``OUTPUT.parts/``, each complete on its own; joined into OUTPUT at the end."""

    def __init__(self, path: Path, columns: list[str], resume_parts: int | None):
        self.path, self.columns = path, columns
        self.parts = path.with_name(path.name + ".parts")
        self.parts.mkdir(exist_ok=True)
        self.count = resume_parts or 0
        for part in self.parts.glob("part-*.parquet"):  # parts past the checkpoint are redone
            if int(part.stem.split("-")[1]) >= self.count:
                part.unlink()
        if resume_parts is None:
            for part in self.parts.glob("*"):
                part.unlink()

    def write(self, rows: list[dict]) -> None:
        write_parquet_part(rows, self.columns, self.parts / f"part-{self.count:06d}.parquet")
        self.count += 1

    @property
    def size(self) -> int:
        return self.count

    def finish(self) -> None:
        join_parquet(sorted(self.parts.glob("part-*.parquet")), self.path, self.columns)

    def cleanup(self) -> None:
        for f in self.parts.glob("*"):
            f.unlink()
        self.parts.rmdir()


def write_parquet_part(rows: list[dict], columns: list[str], final: Path) -> None:
    """One Parquet file of rows, written under a temporary name and renamed: never seen half-written."""
    import pandas as pd

    tmp = final.with_suffix(".tmp")
    pd.DataFrame(rows, columns=columns).to_parquet(tmp, index=False)
    os.replace(tmp, final)


def join_parquet(files: list[Path], path: Path, columns: list[str]) -> None:
    """Parquet parts joined in order into ``path`` (one part in memory at a time), atomically."""
    import pyarrow.parquet as pq

    tmp = path.with_name(path.name + ".tmp")
    if files:
        with pq.ParquetWriter(tmp, parquet_schema(files)) as writer:
            for f in files:  # one part in memory at a time
                table = pq.read_table(f)
                writer.write_table(conform_table(table, writer.schema))
    else:
        import pandas as pd

        pd.DataFrame(columns=columns).to_parquet(tmp, index=False)
    os.replace(tmp, path)


def parquet_schema(files: list[Path]):
    """One schema for Parquet parts written apart: their types unified, or text where they clash."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(f) for f in files]
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return _string_schema(schemas)


def _string_schema(schemas):
    import pyarrow as pa

    names = []
    for s in schemas:
        names += [n for n in s.names if n not in names]
    return pa.schema([(n, pa.string()) for n in names])


def conform_table(table, schema):
    """A part's table cast to the common schema (missing columns as nulls)."""
    import pyarrow as pa

    cols = []
    for field in schema:
        if field.name in table.column_names:
            col = table[field.name]
            if col.type != field.type:
                col = col.cast(field.type) if not pa.types.is_string(field.type) else \
                    pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())
        else:
            col = pa.nulls(len(table), field.type)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=schema)


def run_label(inputs: list[str], output: str, *, model=None, backend: str = "onnx", fmt: str | None = None,
              opts: ReadOptions | None = None, batch_size: int = 32, chunk_size: int = 512,
              resume: bool = False, force: bool = False, on_error: str = "skip", threads: int | None = None,
              progress: bool | None = None, log=None, recheck: float | None = None) -> dict:
    """Label every paragraph of ``inputs`` into ``output``; returns the run's summary counts.
    ``recheck``: see ``Labeler.from_pretrained``."""
    from tqdm.auto import tqdm

    from .labeler import Labeler

    opts, log = run_defaults(opts, on_error, log)
    output = Path(output)
    fmt = output_format(output, fmt)
    checkpoint = Checkpoint(output)
    state = checkpoint.load() if resume else None
    if resume and state is None:
        if output.exists():
            log(f"{output} is already complete (no checkpoint to resume from)")
            return {"labelled": 0, "skipped": 0, "flagged": 0, "already_complete": True}
        log(f"nothing to resume at {output}; starting a new run")
    if not resume and (output.exists() or checkpoint.path.exists()) and not force:
        raise StanceError(f"{output} exists; use --resume to continue an interrupted run or --force to overwrite")
    if output.exists() and not resume:
        output.unlink()

    files = expand_inputs(inputs)
    started = time.time()
    labeler = Labeler.from_pretrained(model, backend=backend, batch_size=batch_size, threads=threads,
                                      progress=False, log=log, recheck=recheck)
    signature = run_signature(files, fmt, labeler.folder, opts)
    sizes = inputs_sizes(files)
    if state is not None:
        if state.get("signature") != signature:
            raise StanceError(f"{checkpoint.path}: the inputs, model or options differ from the interrupted "
                              f"run; rerun with the same ones, or start again with --force")
        if state.get("sizes") != sizes:
            log("warning: some inputs changed since the interrupted run (a fixed file?); resuming assumes "
                "the items already labelled are unchanged")

    columns = output_columns(files, opts, labeler.codebook)
    counts = dict(state["counts"]) if state else {"labelled": 0, "skipped": 0, "flagged": 0}
    consumed_before = state["consumed"] if state else 0
    if fmt == "parquet":
        writer = _ParquetWriter(output, columns, state["size"] if state else None)
    else:
        writer = AppendWriter(output, fmt, columns, labeler.nested, state["size"] if state else None)
    # what earlier paragraphs of the current document named, carried across chunks and through
    # the checkpoint, so a resumed run reads each paragraph exactly as an uninterrupted one
    context = DocumentContext.from_state(len(labeler.codebook.actors), state.get("context") if state else None)
    stats = Stats()
    consumed = 0
    pending: list = []
    bar = tqdm(desc="labelling", unit="para", disable=not ((sys.stderr.isatty()) if progress is None else progress),
               initial=consumed_before)
    shown_errors = 0

    def flush():
        nonlocal pending
        good = [it for it in pending if it.error is None]
        rows = []
        if good:
            for it, lab in zip(good, labeler.rows([it.text for it in good], doc_ids=[it.doc_id for it in good],
                                                  context=context)):
                rows.append(output_row(it, lab))
                counts["flagged"] += int(not lab["english"])
            writer.write(rows)
        counts["labelled"] += len(rows)
        bar.update(len(pending))
        checkpoint.save({"signature": signature, "sizes": sizes, "consumed": consumed_before + consumed,
                         "size": writer.size, "counts": counts, "context": context.state()})
        pending = []

    try:
        for position, item in enumerate(read_items(files, opts, stats)):
            if position < consumed_before:
                continue
            if item.error is not None:
                if on_error == "fail":
                    flush()
                    raise item.error
                counts["skipped"] += 1
                shown_errors = log_skipped(item.error, shown_errors, log)
            consumed += 1
            pending.append(item)
            if len(pending) >= chunk_size:
                flush()
        flush()
    finally:
        bar.close()
        if fmt != "parquet":
            writer.finish()
    if fmt == "parquet":
        writer.finish()
    checkpoint.remove()
    if fmt == "parquet":
        writer.cleanup()
    summary = report(counts, stats, time.time() - started, output, shown_errors, log)
    c = labeler.predictor.counts  # in this run (a resumed run counts what it labelled)
    return report_rechecked(summary, c["rechecked"], c["paragraphs"], labeler.predictor.recheck_margin, log)


# -- pieces shared with the Ray engine (stance/distributed.py) ---------------------------------

BASE_COLUMNS = ["id", "doc_id", "paragraph", "text"]
SHOWN_ERRORS = 20


def run_defaults(opts: ReadOptions | None, on_error: str, log) -> tuple[ReadOptions, object]:
    """Reading options and the log a run uses, after checking ``on_error``."""
    if on_error not in ("skip", "fail"):
        raise StanceError(f"--on-error must be skip or fail, not {on_error!r}")
    return opts or ReadOptions(), log or (lambda m: print(m, file=sys.stderr))


def run_signature(files: list[Path], fmt: str, model_folder, opts: ReadOptions) -> dict:
    """What must not change between an interrupted run and its ``--resume``."""
    return {"inputs": [str(f) for f in files], "format": fmt, "model": str(model_folder),
            "text_col": opts.text_col, "id_col": opts.id_col, "split_tables": opts.split_tables}


def inputs_sizes(files: list[Path]) -> list:
    return [[str(f), f.stat().st_size] for f in files]


def output_columns(files: list[Path], opts: ReadOptions, codebook) -> list[str]:
    """The output's columns: the item's, ``source``, every table's other columns, then the labels."""
    carried: list[str] = []
    for f in files:
        if f.suffix.lower() in TABLE_SUFFIXES:
            try:
                cols = table_columns(f, opts)
            except InputError:
                continue  # reported when the file is read
            carried += [c for c in cols if c != opts.text_col and c not in carried]
    carried = [c for c in carried if c not in BASE_COLUMNS]
    return BASE_COLUMNS + ["source"] + carried + label_columns(codebook)


def output_row(item, labels: dict) -> dict:
    """One output row: an input item with its carried columns, and its labels from ``Labeler.rows``."""
    return {"id": item.id, "doc_id": item.doc_id, "paragraph": item.paragraph, "text": item.text,
            "source": item.where, **{k: v for k, v in item.carried.items() if k not in BASE_COLUMNS}, **labels}


def log_skipped(error, shown: int, log) -> int:
    """Name the first few skipped items; returns how many have been skipped so far."""
    if shown < SHOWN_ERRORS:
        log(f"skipped: {error}")
    return shown + 1


def report(counts: dict, stats: Stats, seconds: float, output, shown_errors: int, log) -> dict:
    """Log the closing line of a run and return its summary counts."""
    if shown_errors > SHOWN_ERRORS:
        log(f"... {shown_errors - SHOWN_ERRORS} more skipped items not shown")
    log(f"labelled {counts['labelled']} paragraphs ({counts['flagged']} flagged as not English), "
        f"skipped {counts['skipped']}; dropped {stats.dropped['headline']} headlines, "
        f"{stats.dropped['byline']} bylines, {stats.dropped['boilerplate']} boilerplate lines; "
        f"{stats.files} files read, {stats.ignored_files} ignored; {seconds:.1f} s -> {output}")
    return {**counts, "files": stats.files, "ignored_files": stats.ignored_files, "dropped": stats.dropped,
            "seconds": round(seconds, 1), "output": str(output)}


def report_rechecked(summary: dict, rechecked: int, paragraphs: int, margin: float, log) -> dict:
    """With the int8 backend's fp32 recheck on (``margin`` > 0): log how many paragraphs it decided
    and add the count to the run's summary."""
    if margin > 0:
        if paragraphs:
            log(f"int8: {rechecked} of {paragraphs} paragraphs ({rechecked / paragraphs:.1%}) had a decision "
                f"within {margin} of its boundary and were decided in fp32")
        summary["rechecked"] = rechecked
    return summary


def label_columns(cb) -> list[str]:
    """The label columns of a codebook, in output order."""
    cols = []
    for a in cb.actor_ids:
        cols.append(f"stance_{a}")
        cols += [f"p_{a}_{v}" for v in cb.value_ids]
    for f in cb.frame_ids:
        cols += [f"frame_{f}", f"p_frame_{f}"]
    return cols + ["windows", "english"]


def add_label_parser(sub) -> None:
    from .inference import INT8_RECHECK

    p = sub.add_parser("label", help="label article files, folders and tables with a model",
                       description="Label every paragraph of the inputs. Exit codes: 0 done (skipped "
                                   "items are listed and counted), 1 a bad input with --on-error fail "
                                   "(everything before it is saved; fix it and --resume), 2 a usage, "
                                   "model or output problem, 130 interrupted (--resume continues).")
    p.add_argument("inputs", nargs="+", help="files or folders: .txt .md .html, .csv .tsv .jsonl .parquet")
    p.add_argument("-o", "--output", required=True,
                   help="output .jsonl, .csv or .parquet; with --engine ray also a folder (Parquet shards "
                        "and a manifest)")
    p.add_argument("--model", help="model folder (default: the shipped models/default)")
    p.add_argument("--backend", default="onnx", choices=["torch", "onnx", "onnx-int8"],
                   help="onnx (default): ONNX Runtime fp32, the torch model's labels, exported once beside the "
                        "model; onnx-int8: about twice as fast; torch: the model as trained")
    p.add_argument("--int8-recheck", type=float, metavar="MARGIN",
                   help=f"onnx-int8: run paragraphs again in fp32 when a decision is within MARGIN of its "
                        "boundary, so int8 agrees with fp32 (default {INT8_RECHECK}; 0 turns it off)")
    p.add_argument("--format", choices=FORMATS, help="output format (default: from the extension)")
    p.add_argument("--text-col", default="text")
    p.add_argument("--id-col")
    p.add_argument("--encoding", default="utf-8")
    p.add_argument("--split-paragraphs", action="store_true",
                   help="treat each table row as an article and split it into paragraphs")
    p.add_argument("--batch-size", type=int, default=32, help="windows per forward pass of the model")
    p.add_argument("--chunk-size", type=int, default=512,
                   help="rows labelled between checkpoints (with --engine ray: rows per call to a worker)")
    p.add_argument("--threads", type=int, help="CPU threads (with --engine ray: per worker, default 1)")
    ray = p.add_argument_group("Ray engine (pip install '.[ray]')")
    ray.add_argument("--engine", default="local", choices=["local", "ray"],
                     help="local: this process; ray: workers on a Ray cluster, same output")
    ray.add_argument("--address", help="a running Ray cluster to join (auto, or HEAD_IP:6379); default: "
                                       "start a local cluster sized to this machine for the run")
    ray.add_argument("--workers", type=int, help="labelling workers, each loading the model once (default: "
                                                 "the cluster's CPUs divided by --threads)")
    ray.add_argument("--shard-size", type=int,
                     help="input items per output shard, the unit --resume redoes (default 4096)")
    p.add_argument("--on-error", default="skip", choices=["skip", "fail"])
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_label)


def cmd_label(args) -> int:
    opts = ReadOptions(text_col=args.text_col, id_col=args.id_col, encoding=args.encoding,
                       split_tables=args.split_paragraphs)
    run = run_label
    if args.engine == "ray":
        from .distributed import run_label_ray

        run = functools.partial(run_label_ray, address=args.address, workers=args.workers,
                                shard_size=args.shard_size or 4096)
    elif args.address or args.workers or args.shard_size:
        raise StanceError("--address, --workers and --shard-size go with --engine ray")
    try:
        run(args.inputs, args.output, model=args.model, backend=args.backend, fmt=args.format, opts=opts,
            batch_size=args.batch_size, chunk_size=args.chunk_size, resume=args.resume, force=args.force,
            on_error=args.on_error, threads=args.threads, progress=False if args.no_progress else None,
            recheck=args.int8_recheck)
    except InputError as e:
        saved = "Every whole shard before it is saved" if args.engine == "ray" else "Everything before it is saved"
        print(f"stance label: error: {e}\n{saved}; fix the input and rerun with --resume, or use --on-error skip.",
              file=sys.stderr)
        return e.exit_code
    return 0
