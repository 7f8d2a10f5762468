"""Labelling on a Ray cluster: ``stance label --engine ray`` and ``label_dataset`` for a Ray Dataset.

This is the only module that imports Ray (``pip install '.[ray]'``); it imports it inside functions,
so ``import stance`` works without it. The command runs the local engine's pipeline
(``stance/labeling.py``) with the labelling spread over workers:

    input files -> one read task (``ray.data``), the local reader (``read_items``), in input order
                -> chunks of ``chunk_size`` items, one row (and one block) each
                -> ``map_batches(ChunkWorker)``: a pool of actors, each loading the model once
                -> the driver, in input order -> shards ``part-00000.parquet`` ... and ``_manifest.json``

The same output as the local engine: each chunk a worker labels is exactly one of the local
engine's chunks (items ``k * chunk_size`` onwards, bad items included and skipped), so the model
sees the same paragraphs in the same length-sorted batches. "Equal" is defined, and tested, as:
the same rows in the same order with the same columns and values, the same stance and frame
decisions, ``windows`` and ``english``, and probabilities within 1e-4, the step they are rounded
to: another ``--chunk-size``, backend or thread count can move a score's last float bits and so
its rounding. With the same chunk size, backend and threads (the workers' default is one thread,
so ``--threads 1`` for the local run) the output files are byte for byte the same.

Shards are deterministic: shard i holds input items ``i * shard_size`` to ``(i + 1) * shard_size - 1``
in the fixed input order (``shard_size`` a multiple of ``chunk_size``), so a rerun puts every item
in the same shard and cuts it into the same chunks. The driver writes a shard under a temporary
name, renames it, and only then records it in the manifest. ``--resume`` keeps the recorded shards
whose files are intact, deletes everything else (a temporary file from a killed run, a shard
renamed but not yet recorded, a damaged one) and labels only the items of the missing shards:
every row is written exactly once. A worker that dies mid-run is restarted by Ray and its chunk
redone; nothing reaches a shard until the driver holds all of it.

``label_dataset`` is the API for a corpus already in a ``ray.data.Dataset``: the same labels as
columns, computed by ``LabelWorker`` actors.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import sys
import time
from bisect import bisect_right
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from .encoding import DocumentContext
from .errors import StanceError
from .inference import INT8_RECHECK
from .inputs import InputError, Item, ReadOptions, Stats, expand_inputs, is_input_file, read_items
from .labeling import (
    AppendWriter,
    JsonState,
    conform_table,
    inputs_sizes,
    join_parquet,
    label_columns,
    log_skipped,
    output_columns,
    output_format,
    output_row,
    parquet_schema,
    report,
    report_rechecked,
    run_defaults,
    run_signature,
    write_parquet_part,
)

INSTALL_HINT = "the Ray engine needs Ray: pip install '.[ray]' (ray[data]==2.60.0)"
# the leading "_" makes pandas, pyarrow and Spark skip it when they read the folder as one dataset
MANIFEST = "_manifest.json"
MANIFEST_VERSION = 1


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401  (the data library is the part this module uses)
    except ImportError:
        raise StanceError(INSTALL_HINT) from None
    return ray


# -- the labelling workers and the Python API ---------------------------------------------------

def label_schema(codebook):
    """Arrow types of the label columns, so every worker's output has the same schema."""
    import pyarrow as pa

    def kind(col):
        if col == "english":
            return pa.bool_()
        if col.startswith("stance_"):
            return pa.string()
        return pa.float64() if col.startswith("p_") else pa.int64()

    return pa.schema([(c, kind(c)) for c in label_columns(codebook)])


class _Worker:
    """A Ray actor's labeller, loaded once when the actor starts."""

    def __init__(self, model: str, backend: str = "onnx", batch_size: int = 32, threads: int = 1,
                 recheck: float | None = None):
        from .labeler import Labeler

        self.labeler = Labeler.from_pretrained(model, backend=backend, batch_size=batch_size, threads=threads,
                                               progress=False, log=lambda m: None, recheck=recheck)


class LabelWorker(_Worker):
    """``label_dataset``'s worker: adds the label columns to a batch of rows (a pyarrow Table).

    Rows whose text is a non-empty string are labelled; other rows get nulls. Every input column
    is kept (one that clashes with a label column is replaced). Each row is read on its own: a
    Dataset's batches come in no order that document context could be carried through.
    """

    def __init__(self, model: str, backend: str = "onnx", batch_size: int = 32, threads: int = 1,
                 text_col: str = "text", recheck: float | None = None):
        super().__init__(model, backend, batch_size, threads, recheck)
        self.text_col = text_col
        self.schema = label_schema(self.labeler.codebook)

    def __call__(self, batch):
        import pyarrow as pa

        if self.text_col not in batch.column_names:
            raise StanceError(f"no text column {self.text_col!r}; columns found: {', '.join(batch.column_names)}")
        texts = batch.column(self.text_col).to_pylist()
        todo = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()]
        labels = dict(zip(todo, self.labeler.rows([texts[i] for i in todo])))
        out = batch.drop_columns([c for c in self.schema.names if c in batch.column_names])
        for field in self.schema:
            values = [labels[i][field.name] if i in labels else None for i in range(len(texts))]
            out = out.append_column(field, pa.array(values, field.type))
        return out


class ChunkWorker(_Worker):
    """The command's worker: labels whole chunks of input items, each exactly a local-engine chunk.

    With each chunk it returns when it began, the seconds it spent and who it is, for throughput figures,
    and how many of its paragraphs the int8 backend rechecked in fp32.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        import socket

        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch):
        import pyarrow as pa

        out, began, seconds, rechecked = [], [], [], []
        for payload, state in zip(batch.column("items").to_pylist(), batch.column("context").to_pylist()):
            began.append(time.time())
            started = time.perf_counter()
            before = self.labeler.predictor.counts["rechecked"]
            records = pickle.loads(payload)
            good = [r for r in records if r["problem"] is None]
            context = DocumentContext.from_state(len(self.labeler.codebook.actors), json.loads(state))
            for r, labels in zip(good, self.labeler.rows([r["text"] for r in good], doc_ids=[r["doc_id"] for r in good],
                                                         context=context)):
                r["labels"] = labels
            out.append(pickle.dumps(records))
            seconds.append(time.perf_counter() - started)
            rechecked.append(self.labeler.predictor.counts["rechecked"] - before)
        return pa.table({"chunk": batch.column("chunk"), "items": pa.array(out, pa.binary()),
                         "began": began, "seconds": seconds, "worker": [self.name] * len(out),
                         "rechecked": rechecked})


def _model_folder(model, backend: str, log):
    """The model folder as an absolute path, checked here, with ONNX exported once before workers start."""
    from .folder import read_model_folder
    from .inference import BACKENDS, onnx_path
    from .labeler import DEFAULT_MODEL

    folder = Path(model if model is not None else DEFAULT_MODEL).resolve()
    if backend not in BACKENDS:
        raise StanceError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    _, codebook = read_model_folder(folder)
    if backend != "torch":
        onnx_path(folder, backend, log=log)  # workers find the cached file instead of racing to export
    return folder, codebook


def _workers(ray, workers: int | None, threads: int, log) -> int:
    cpus = int(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() else (os.cpu_count() or 1)
    if workers is None:
        return max(1, cpus // threads)
    if workers < 1:
        raise StanceError("--workers must be at least 1")
    if workers * threads > cpus:
        log(f"warning: {workers} workers x {threads} threads ask for more than the cluster's {cpus} CPUs; "
            f"the extra workers start only when the cluster grows")
    return workers


def _worker_args(folder, backend: str, batch_size: int, threads: int, recheck: float | None = None) -> dict:
    return dict(model=str(folder), backend=backend, batch_size=batch_size, threads=threads, recheck=recheck)


def label_dataset(ds, model=None, *, text_col: str = "text", backend: str = "onnx", workers: int | None = None,
                  threads: int = 1, batch_size: int = 32, rows_per_call: int = 512, log=None,
                  recheck: float | None = None):
    """Label a ``ray.data.Dataset``: its rows with the label columns added, as a new (lazy) Dataset.

    ``model`` is a model folder readable at the same path on every node (default: the shipped
    one); ``workers`` actors (default: the cluster's CPUs divided by ``threads``) each load it once
    and label up to ``rows_per_call`` rows at a time with ``threads`` CPU threads. The Dataset's
    blocks are the unit of work, so read it with at least as many blocks as workers. Rows keep
    their order when ``DataContext.get_current().execution_options.preserve_order`` is set.
    """
    ray = _ray()
    log = log or (lambda m: print(m, file=sys.stderr))
    folder, _ = _model_folder(model, backend, log)
    threads = threads or 1
    workers = _workers(ray, workers, threads, log)
    return ds.map_batches(LabelWorker, fn_constructor_kwargs={**_worker_args(folder, backend, batch_size, threads, recheck),
                                                              "text_col": text_col},
                          batch_size=rows_per_call, batch_format="pyarrow",
                          compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=threads)


# -- reading the command's inputs on the cluster --------------------------------------------------

class _Done:
    """Item positions ``(file, pos)`` inside shards already written, as merged closed intervals."""

    def __init__(self, intervals: list[tuple[tuple[int, int], tuple[int, int]]]):
        self.starts = [a for a, _ in intervals]
        self.ends = [b for _, b in intervals]

    @classmethod
    def of(cls, shards: list[dict]) -> "_Done":
        merged: list[list] = []
        for s in sorted(shards, key=lambda s: s["index"]):
            first, last = tuple(s["first"]), tuple(s["last"])
            if merged and merged[-1][2] == s["index"] - 1:
                merged[-1][1], merged[-1][2] = last, s["index"]
            else:
                merged.append([first, last, s["index"]])
        return cls([(a, b) for a, b, _ in merged])

    def __contains__(self, key: tuple[int, int]) -> bool:
        i = bisect_right(self.starts, key) - 1
        return i >= 0 and key <= self.ends[i]

    def interval(self, key: tuple[int, int]) -> int:
        return bisect_right(self.starts, key) - 1


@contextmanager
def _in_dir(path: str):
    """Relative input paths mean what they mean on the driver (a read task runs alone in its worker)."""
    here = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(here)


def _file_records(f: int, path: str, opts: ReadOptions):
    """The items of one file as plain records; the file's reading counts ride on its last one."""
    stats = Stats()
    last = None
    for pos, item in enumerate(read_items([Path(path)], opts, stats)):
        if last is not None:
            yield last
        error = item.error
        last = {"file": f, "pos": pos, "id": item.id, "doc_id": item.doc_id, "paragraph": item.paragraph,
                "text": item.text, "where": error.where if error else item.where, "carried": item.carried,
                "problem": error.problem if error else None, "stats": None}
    if last is not None:
        last["stats"] = {**asdict(stats), "last": last["pos"]}
        yield last


def _read_chunks(batch, opts: ReadOptions, done: _Done, cwd: str, chunk_size: int, context_model: str | None = None):
    """The read task: every item of every file in input order, minus those in written shards, cut
    into chunks of ``chunk_size`` items, one row each. A chunk never spans a written shard, so a
    redone shard is cut into the same chunks as in a run that was never interrupted.

    ``batch`` is one row listing the files (``file``: their numbers, ``path``: their paths).
    """
    import pyarrow as pa

    files, paths = batch.column("file")[0].as_py(), batch.column("path")[0].as_py()
    # For a model that reads document context, each chunk carries the context at its start (what
    # the document's earlier paragraphs named), as the local engine carries it from chunk to chunk.
    context = None
    if context_model is not None:
        from .encoding import DocumentContext, named_actors
        from .folder import read_model_folder

        codebook = read_model_folder(Path(context_model))[1]
        context = DocumentContext(len(codebook.actors))

    chunk: list[dict] = []
    number = 0
    start_state = None

    def row():
        nonlocal chunk, number
        table = pa.table({"chunk": [number], "items": pa.array([pickle.dumps(chunk)], pa.binary()),
                          "context": [json.dumps(start_state)]})
        chunk, number = [], number + 1
        return table

    with _in_dir(cwd):
        for f, path in zip(files, paths):
            for record in _file_records(f, path, opts):
                written = (f, record["pos"]) in done
                if written and chunk:
                    yield row()
                if context is not None:
                    if not written and not chunk:
                        start_state = context.state()
                    if record["problem"] is None:  # bad items are skipped, as in the local engine
                        context.features([named_actors(record["text"], codebook)], [record["doc_id"]])
                if written:
                    continue
                chunk.append(record)
                if len(chunk) == chunk_size:
                    yield row()
    if chunk:
        yield row()


def _label_chunks(ray, files: list[Path], opts: ReadOptions, done: _Done, skip_files: set[int], folder,
                  backend: str, batch_size: int, chunk_size: int, workers: int, threads: int,
                  recheck: float | None = None):
    """The command's pipeline: one ordered read task, then a pool of ``ChunkWorker`` actors."""
    todo = [{"file": i, "path": str(f)} for i, f in enumerate(files) if i not in skip_files and is_input_file(f)]
    if not todo:
        return None
    # one read task keeps the input order and the local engine's chunks; it takes no CPU slot, so it
    # never waits behind the workers, and it runs where the driver is, so the inputs need only be there
    ds = ray.data.from_items([{"file": [t["file"] for t in todo], "path": [t["path"] for t in todo]}])
    from .folder import read_model_folder

    context_model = str(folder) if read_model_folder(Path(folder))[0].context_features else None
    ds = ds.map_batches(_read_chunks, fn_kwargs=dict(opts=opts, done=done, cwd=os.getcwd(), chunk_size=chunk_size,
                                                     context_model=context_model),
                        batch_size=None, batch_format="pyarrow", num_cpus=0,
                        label_selector={"ray.io/node-id": ray.get_runtime_context().get_node_id()},
                        fallback_strategy=[{"label_selector": {}}])
    return ds.map_batches(ChunkWorker, fn_constructor_kwargs=_worker_args(folder, backend, batch_size, threads, recheck),
                          batch_size=1, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=workers),
                          num_cpus=threads)


# -- shards and the manifest ----------------------------------------------------------------------

class _Manifest(JsonState):
    what = "manifest"
    indent = 1  # read by people too


class _Shards:
    """Where a run's shards live: the OUTPUT folder itself, or ``OUTPUT.shards/`` beside an OUTPUT file.

    A shard is one file: ``part-00000.parquet`` in a folder output, typed by Arrow and given the
    schema common to all shards at the end, so the folder reads as one dataset; ``part-00000.jsonl``
    or ``.csv`` for such an OUTPUT file, which is then the shards end to end. For a single Parquet
    OUTPUT a shard is one file a chunk, ``part-00000-0000.parquet`` ...: the local engine writes a
    Parquet part a chunk with pandas, which types each part on its own (a column with no value in a
    part becomes a float one), and joins them; the same parts make the same output file.
    """

    def __init__(self, output: Path, fmt: str | None):
        self.output = output
        self.is_folder = output.is_dir() or not output.suffix
        if self.is_folder:
            if fmt not in (None, "parquet"):
                raise StanceError(f"{output}: a folder output holds Parquet shards; --format {fmt} needs an "
                                  f"output file (e.g. {output.name}.{fmt})")
            self.fmt, self.dir = "parquet", output
        else:
            self.fmt, self.dir = output_format(output, fmt), output.with_name(output.name + ".shards")
        self.manifest_file = _Manifest(self.dir / MANIFEST)
        self.per_chunk = self.fmt == "parquet" and not self.is_folder

    def ours(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return [p for p in self.dir.iterdir() if p.name == MANIFEST or p.name.startswith("part-")
                or p.name.endswith(".tmp")]

    def exists(self) -> bool:
        return bool(self.ours()) or (not self.is_folder and self.output.exists())

    def clear(self) -> None:
        for p in self.ours():
            p.unlink()
        if not self.is_folder:
            self.output.unlink(missing_ok=True)
            if self.dir.is_dir() and not any(self.dir.iterdir()):
                self.dir.rmdir()

    def intact(self, entry: dict) -> bool:
        for f in entry["files"]:
            path = self.dir / f["name"]
            if not path.exists() or path.stat().st_size != f["bytes"]:
                return False
            if self.fmt == "parquet":
                import pyarrow.parquet as pq

                try:
                    if pq.ParquetFile(path).metadata.num_rows != f["rows"]:
                        return False
                except Exception:  # a damaged file: pyarrow raises several types
                    return False
        return True

    def write(self, index: int, chunks: list[list[dict]], columns: list[str], nested) -> list[dict]:
        """Write one shard, each file under a temporary name first; returns its files for the manifest."""
        if self.per_chunk:
            parts = [(f"part-{index:05d}-{k:04d}.parquet", rows) for k, rows in enumerate(chunks) if rows]
        else:
            parts = [(f"part-{index:05d}.{self.fmt}", [r for rows in chunks for r in rows])]
        for name, rows in parts:
            final = self.dir / name
            if self.per_chunk:
                write_parquet_part(rows, columns, final)
            elif self.fmt == "parquet":
                import pyarrow.parquet as pq

                tmp = final.with_suffix(".tmp")
                pq.write_table(_arrow_table(rows, columns), tmp)
                os.replace(tmp, final)
            else:
                tmp = final.with_suffix(".tmp")
                writer = AppendWriter(tmp, self.fmt, columns, nested, None, header=False)
                writer.write(rows)
                writer.finish()
                os.replace(tmp, final)
        return [{"name": name, "rows": len(rows), "bytes": (self.dir / name).stat().st_size}
                for name, rows in parts]

    def unify(self, manifest: dict) -> None:
        """Give every shard of a folder output one schema, so the folder reads as one dataset: a shard
        where a column had no value, or only whole numbers, is rewritten with the common type."""
        import pyarrow.parquet as pq

        files = [f for e in manifest["shards"] for f in e["files"]]
        schema = parquet_schema([self.dir / f["name"] for f in files])
        for f in files:
            path = self.dir / f["name"]
            if pq.read_schema(path).equals(schema, check_metadata=False):
                continue
            tmp = path.with_suffix(".tmp")
            pq.write_table(conform_table(pq.read_table(path), schema), tmp)
            os.replace(tmp, path)
            f["bytes"] = path.stat().st_size
            self.manifest_file.save(manifest)

    def assemble(self, entries: list[dict], columns: list[str], nested) -> None:
        """The single OUTPUT file from the shards' files in order, then the shards are removed."""
        files = [self.dir / f["name"] for e in entries for f in e["files"]]
        if self.fmt == "parquet":
            join_parquet(files, self.output, columns)
        else:
            tmp = self.output.with_name(self.output.name + ".tmp")
            writer = AppendWriter(tmp, self.fmt, columns, nested, None)
            for f in files:
                writer.append_file(f)
            writer.finish()
            os.replace(tmp, self.output)
        for p in self.ours():
            p.unlink()
        self.dir.rmdir()


def _arrow_table(rows: list[dict], columns: list[str]):
    """Rows as an Arrow table typed column by column: a column of whole numbers stays whole numbers
    where some rows have none (pandas would make it float), and a column of mixed types is text."""
    import pyarrow as pa

    arrays = {}
    for c in columns:
        values = [r.get(c) for r in rows]
        try:
            arrays[c] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays[c] = pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.table(arrays)


class _Router:
    """Gives each arriving item its shard number, in a run that may skip shards already written.

    Items arrive in input order without those of written shards; each gap between written shards
    holds exactly the items of the missing shards in it, or the inputs changed.
    """

    def __init__(self, done: list[dict], shard_size: int):
        self.done = sorted(done, key=lambda s: s["index"])
        self.size = shard_size
        self.next_done = 0  # the first written shard not yet passed
        self.base = 0  # the first shard of the current gap
        self.count = 0  # items seen in the current gap

    def _pass_written(self) -> None:
        d = self.done[self.next_done]
        if self.count != (d["index"] - self.base) * self.size:
            raise StanceError(f"the inputs changed since the interrupted run (shard {d['index']} no longer lines "
                              f"up with the items before it); start again with --force")
        self.base, self.count = d["index"] + 1, 0
        self.next_done += 1

    def shard_of(self, key: tuple[int, int]) -> int:
        while self.next_done < len(self.done) and tuple(self.done[self.next_done]["last"]) < key:
            self._pass_written()
        index = self.base + self.count // self.size
        if self.next_done < len(self.done) and index >= self.done[self.next_done]["index"]:
            raise StanceError("the inputs changed since the interrupted run (more items than before); start "
                              "again with --force")
        self.count += 1
        return index

    def finish(self) -> None:
        while self.next_done < len(self.done):
            self._pass_written()


class _Shard:
    """The rows of one shard while its items arrive, chunk by chunk."""

    def __init__(self, index: int, first: tuple[int, int]):
        self.index = index
        self.chunks: list[list[dict]] = [[]]
        self.items = 0
        self.first = self.last = list(first)
        self.counts = {"labelled": 0, "skipped": 0, "flagged": 0}
        self.file_stats: dict[str, dict] = {}

    def add(self, record: dict, key: tuple[int, int]) -> None:
        self.items += 1
        self.last = list(key)
        if record["stats"]:
            self.file_stats[str(record["file"])] = record["stats"]
        if record["problem"] is not None:
            self.counts["skipped"] += 1
            return
        item = Item(record["id"], record["doc_id"], record["text"], record["paragraph"], record["carried"],
                    record["where"])
        self.chunks[-1].append(output_row(item, record["labels"]))
        self.counts["labelled"] += 1
        self.counts["flagged"] += int(not record["labels"]["english"])

    def end_chunk(self) -> None:
        if self.chunks[-1]:
            self.chunks.append([])


# -- the command ----------------------------------------------------------------------------------

@contextmanager
def _connected(ray, address: str | None, log):
    """Use the session's Ray connection, or connect to ``address``, or start a local cluster for the run."""
    if ray.is_initialized():
        yield  # a notebook or a test holds a connection already: use it and leave it open
        return
    quiet = dict(logging_level=logging.ERROR, log_to_driver=False)
    if address:
        log(f"connecting to the Ray cluster at {address}")
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **quiet)
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def _data_context(ray):
    """Chunks come back in input order, each in a block of its own (so any idle worker can take it);
    Ray's own progress bars and banners stay off (the command shows its own)."""
    ctx = ray.data.DataContext.get_current()
    saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars, ctx.print_on_execution_start,
             ctx.target_max_block_size)
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.target_max_block_size = 1  # one chunk (a single row) a block
    logger = logging.getLogger("ray.data")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        (ctx.execution_options.preserve_order, ctx.enable_progress_bars, ctx.print_on_execution_start,
         ctx.target_max_block_size) = saved
        logger.setLevel(level)


def _stance_error(e: BaseException) -> StanceError | None:
    """The StanceError behind an exception raised in a Ray task (Ray wraps it), if there is one."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        inner = getattr(e, "cause", None)  # RayTaskError keeps the task's own exception here
        if isinstance(inner, BaseException):
            e = inner
            continue
        if type(e).__module__.startswith("stance") and isinstance(e, StanceError):
            return e
        e = e.__cause__ or e.__context__
    return None


def run_label_ray(inputs: list[str], output: str, *, model=None, backend: str = "onnx", fmt: str | None = None,
                  opts: ReadOptions | None = None, batch_size: int = 32, chunk_size: int = 512,
                  shard_size: int = 4096, workers: int | None = None, threads: int | None = None,
                  address: str | None = None, resume: bool = False, force: bool = False, on_error: str = "skip",
                  progress: bool | None = None, log=None, recheck: float | None = None) -> dict:
    """``run_label`` on a Ray cluster: the same rows, written as shards that a killed run can resume.

    Returns the run's summary counts, as ``run_label`` does, plus throughput figures: ``start_s``,
    the seconds before the first worker began its first chunk (reading, starting the workers and
    loading the model), and ``workers``: for each, the paragraphs it labelled and the seconds it spent.
    """
    ray = _ray()
    opts, log = run_defaults(opts, on_error, log)
    output = Path(output)
    shards = _Shards(output, fmt)
    if chunk_size < 1 or shard_size < 1 or shard_size % chunk_size:
        raise StanceError(f"--shard-size ({shard_size}) must be a whole multiple of --chunk-size ({chunk_size}), "
                          f"so that a redone shard is labelled in the same chunks as the first time")
    threads = threads or 1
    state = shards.manifest_file.load() if resume else None
    if resume and (state is None and not shards.is_folder and output.exists()
                   or state is not None and state.get("done") and shards.is_folder):
        log(f"{output} is already complete (nothing to resume)")
        return {"labelled": 0, "skipped": 0, "flagged": 0, "already_complete": True}
    if resume and state is None:
        log(f"nothing to resume at {output}; starting a new run")
    elif not resume and shards.exists() and not force:
        raise StanceError(f"{output} exists; use --resume to continue an interrupted run or --force to overwrite")
    if state is None:
        shards.clear()

    files = expand_inputs(inputs)
    started = time.time()
    folder, codebook = _model_folder(model, backend, log)
    from .inference import _fingerprint

    signature = {**run_signature(files, shards.fmt, folder, opts), "model_fingerprint": _fingerprint(folder),
                 "backend": backend, "chunk_size": chunk_size, "shard_size": shard_size}
    collector = _Collector(shards, codebook, output_columns(files, opts, codebook), shard_size, on_error, log)
    collector.start(signature, inputs_sizes(files), state, [f for f in files if not is_input_file(f)])

    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if progress is None else progress
    collector.bar = tqdm(desc="labelling", unit="para", disable=not show, initial=collector.items_done)
    workers_seen: dict[str, dict] = {}
    try:
        with _connected(ray, address, log), _data_context(ray):
            ds = _label_chunks(ray, files, opts, collector.done, collector.finished_files(), folder, backend,
                               batch_size, chunk_size, _workers(ray, workers, threads, log), threads, recheck)
            for batch in (ds.iter_batches(batch_size=None, batch_format="pyarrow") if ds is not None else ()):
                for payload, began, seconds, worker, again in zip(*(batch.column(c).to_pylist() for c in
                                                                    ("items", "began", "seconds", "worker", "rechecked"))):
                    records = pickle.loads(payload)
                    w = workers_seen.setdefault(worker, {"worker": worker, "paragraphs": 0, "busy_s": 0.0,
                                                         "began": began, "rechecked": 0})
                    w["began"] = min(w["began"], began)
                    w["paragraphs"] += sum(r["problem"] is None for r in records)
                    w["busy_s"] += seconds
                    w["rechecked"] += again
                    collector.take(records)
            collector.finish()
    except Exception as e:
        cause = _stance_error(e)
        if cause is not None and cause is not e:
            raise cause from None
        raise
    finally:
        collector.bar.close()
    collector.complete()
    summary = report(collector.counts, collector.stats, time.time() - started, output, collector.shown_errors, log)
    margin = (INT8_RECHECK if recheck is None else recheck) if backend == "onnx-int8" else 0.0
    report_rechecked(summary, sum(w["rechecked"] for w in workers_seen.values()),
                     sum(w["paragraphs"] for w in workers_seen.values()), margin, log)
    if workers_seen:  # clocks of other nodes are trusted to within a fraction of a second
        summary["start_s"] = round(min(w.pop("began") for w in workers_seen.values()) - started, 2)
        summary["workers"] = [{**w, "busy_s": round(w["busy_s"], 2)} for w in workers_seen.values()]
    return summary


class _Collector:
    """The driver's side: labelled items arrive in input order and leave as shards in the manifest."""

    def __init__(self, shards: _Shards, codebook, columns: list[str], shard_size: int, on_error: str, log):
        from .labeler import nested_row

        self.shards, self.columns, self.size, self.on_error, self.log = shards, columns, shard_size, on_error, log
        self.nested = lambda row: nested_row(row, codebook)
        self.counts = {"labelled": 0, "skipped": 0, "flagged": 0}
        self.shown_errors = 0
        self.current: _Shard | None = None
        self.bar = None

    def start(self, signature: dict, sizes: list, state: dict | None, ignored: list[Path]) -> None:
        """Keep the intact shards of an interrupted run (``state``) and delete everything else."""
        shards, kept = self.shards, []
        if state is not None:
            if state.get("signature") != signature or state.get("version") != MANIFEST_VERSION:
                raise StanceError(f"{shards.manifest_file.path}: the inputs, model or options differ from the "
                                  f"interrupted run; rerun with the same ones, or start again with --force")
            if state.get("sizes") != sizes:
                self.log("warning: some inputs changed since the interrupted run (a fixed file?); resuming "
                         "assumes the items already labelled are unchanged")
            for entry in state["shards"]:
                if shards.intact(entry):
                    kept.append(entry)
                else:
                    self.log(f"shard {entry['index']} ({', '.join(f['name'] for f in entry['files']) or 'no rows'}) "
                             f"is missing or damaged; it will be labelled again")
            names = {f["name"] for e in kept for f in e["files"]} | {MANIFEST}
            for p in shards.ours():  # temporary files of a killed run, shards written but never recorded
                if p.name not in names:
                    p.unlink()
        shards.dir.mkdir(parents=True, exist_ok=True)
        self.manifest = {"version": MANIFEST_VERSION, "engine": "ray", "signature": signature, "sizes": sizes,
                         "columns": self.columns, "format": shards.fmt, "shards": kept, "done": False}
        shards.manifest_file.save(self.manifest)
        self.done = _Done.of(kept)
        self.router = _Router(kept, self.size)
        self.stats = Stats(ignored_files=len(ignored))
        for entry in kept:
            self._add(entry["counts"], entry["file_stats"])
        self.items_done = sum(e["items"] for e in kept)

    def finished_files(self) -> set[int]:
        """Files whose every item is in a written shard: not even read again."""
        out = set()
        for entry in self.manifest["shards"]:
            for f, s in entry["file_stats"].items():
                first, last = (int(f), 0), (int(f), s["last"])
                if first in self.done and last in self.done and self.done.interval(first) == self.done.interval(last):
                    out.add(int(f))
        return out

    def take(self, records: list[dict]) -> None:
        """One labelled chunk, in input order."""
        for record in records:
            key = (record["file"], record["pos"])
            index = self.router.shard_of(key)
            if self.current is not None and self.current.index != index:
                raise StanceError("the inputs changed since the interrupted run; start again with --force")
            if self.current is None:
                self.current = _Shard(index, key)
            self.current.add(record, key)
            if record["problem"] is not None:
                error = InputError(record["where"], record["problem"])
                if self.on_error == "fail":
                    raise error
                self.shown_errors = log_skipped(error, self.shown_errors, self.log)
            self.bar.update(1)
            if self.current.items == self.size:
                self._close()
        if self.current is not None:
            self.current.end_chunk()

    def _close(self) -> None:
        shard, self.current = self.current, None
        files = self.shards.write(shard.index, shard.chunks, self.columns, self.nested)
        self.manifest["shards"].append({"index": shard.index, "files": files, "items": shard.items,
                                        "rows": sum(f["rows"] for f in files), "first": shard.first,
                                        "last": shard.last, "counts": shard.counts, "file_stats": shard.file_stats})
        self.manifest["shards"].sort(key=lambda e: e["index"])
        self.shards.manifest_file.save(self.manifest)  # only now does the shard count as written
        self._add(shard.counts, shard.file_stats)

    def _add(self, shard_counts: dict, file_stats: dict) -> None:
        for k in self.counts:
            self.counts[k] += shard_counts[k]
        for s in file_stats.values():
            self.stats.files += s["files"]
            self.stats.ignored_files += s["ignored_files"]
            for k, v in s["dropped"].items():
                self.stats.dropped[k] = self.stats.dropped.get(k, 0) + v

    def finish(self) -> None:
        """Every item has arrived: write the last shard."""
        if self.current is not None:
            self._close()
        self.router.finish()

    def complete(self) -> None:
        """Mark the run done; a folder's shards get one schema, an output file is assembled."""
        entries = self.manifest["shards"]
        if [e["index"] for e in entries] != list(range(len(entries))):
            raise StanceError(f"{self.shards.manifest_file.path}: shards are missing after the run; rerun with "
                              f"--resume")
        if self.shards.is_folder:
            self.shards.unify(self.manifest)
        self.manifest["done"] = True
        self.manifest["counts"] = self.counts
        self.shards.manifest_file.save(self.manifest)
        if not self.shards.is_folder:
            self.shards.assemble(entries, self.columns, self.nested)


__all__ = ["label_dataset", "run_label_ray", "LabelWorker", "INSTALL_HINT"]
