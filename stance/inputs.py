"""Reading a labelling job's inputs as a stream of paragraphs, with clear messages for bad input.

Inputs are any mix of article files (.txt, .md, .html), folders of them, and tables (.csv,
.tsv, .jsonl, .parquet) with a text column. Everything is read lazily, in a fixed order, so a
resumed run can skip what it has already done, and memory stays flat.
"""
from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .errors import StanceError
from .text import html_to_text, split_paragraphs

ARTICLE_SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm"}
TABLE_SUFFIXES = {".csv", ".tsv", ".jsonl", ".ndjson", ".parquet"}


class InputError(StanceError):
    """A problem with one input file or row; ``where`` is ``file``, ``file:line`` or ``file row N``."""

    exit_code = 1

    def __init__(self, where: str, problem: str):
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


@dataclass
class Item:
    """One unit to label, or one problem in the stream (``error`` set, ``text`` empty)."""

    id: str
    doc_id: str
    text: str
    paragraph: int | None = None
    carried: dict = field(default_factory=dict)
    where: str = ""
    error: InputError | None = None


@dataclass
class ReadOptions:
    text_col: str = "text"
    id_col: str | None = None
    encoding: str = "utf-8"
    split_tables: bool = False  # treat each table row as an article to split into paragraphs


@dataclass
class Stats:
    files: int = 0
    ignored_files: int = 0
    dropped: dict = field(default_factory=lambda: {"headline": 0, "byline": 0, "boilerplate": 0})


def expand_inputs(paths: list[str]) -> list[Path]:
    """Files to read, in a stable order: folders are walked recursively and sorted."""
    out = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files = sorted(f for f in path.rglob("*") if f.is_file()
                           and not any(part.startswith(".") for part in f.relative_to(path).parts))
            out += files
        elif path.exists():
            out.append(path)
        else:
            raise StanceError(f"{path}: no such file or folder")
    return out


def _decode(raw: bytes, path: Path, encoding: str) -> str:
    if b"\x00" in raw[:8192]:
        raise InputError(str(path), "looks like a binary file (contains NUL bytes), not text")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}", f"cannot decode byte {raw[e.start]:#04x} as {encoding}; "
                         f"pass --encoding (for example --encoding cp1252 or latin-1)") from None
    except LookupError:
        raise StanceError(f"unknown --encoding {encoding!r}") from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise InputError(str(path), f"cannot read the file: {e.strerror}") from None


def _articles(path: Path, text: str, doc_id: str, stats: Stats, carried=None, where=None) -> Iterator[Item]:
    if path.suffix.lower() in (".html", ".htm"):
        text = html_to_text(text)
    split = split_paragraphs(text)
    for k, v in split.dropped.items():
        stats.dropped[k] = stats.dropped.get(k, 0) + v
    if not split.paragraphs:
        yield Item("", doc_id, "", where=where or str(path),
                   error=InputError(where or str(path), "no paragraphs to label (empty after removing "
                                                        "headlines and boilerplate)"))
    for p in split.paragraphs:
        yield Item(f"{doc_id}-p{p.index}", doc_id, p.text, p.index, dict(carried or {}),
                   where=f"{where or path} paragraph {p.index}")


def _check_text(text, where: str) -> InputError | None:
    if text is None or (isinstance(text, float) and text != text):
        return InputError(where, "missing text")
    if not isinstance(text, str):
        return InputError(where, f"text is not a string ({type(text).__name__})")
    if not text.strip():
        return InputError(where, "empty or whitespace-only text")
    return None


def table_columns(path: Path, opts: ReadOptions) -> list[str]:
    """The column names of a table (read from its header or first rows only)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except Exception as e:  # pyarrow raises several types for a broken file
            raise InputError(str(path), f"not a readable Parquet file ({e})") from None
    if suffix in (".csv", ".tsv"):
        raw = _read_bytes(path)[:65536]
        text = _decode(raw, path, opts.encoding) if raw else ""
        first = next(csv.reader(text.splitlines()[:1], delimiter="\t" if suffix == ".tsv" else ","), [])
        return first
    cols: list[str] = []
    with open(path, "rb") as f:
        for _, line in zip(range(200), f):
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(obj, dict):
                cols += [k for k in obj if k not in cols]
    return cols


def _table_item(row: dict, path: Path, where: str, number: int, opts: ReadOptions, stats: Stats,
                columns) -> Iterator[Item]:
    if opts.text_col not in row:
        raise InputError(str(path), f"no text column {opts.text_col!r}; columns found: "
                         f"{', '.join(map(str, columns)) or 'none'} (choose one with --text-col)")
    text = row[opts.text_col]
    id_col = opts.id_col or ("id" if "id" in row else None)
    if opts.id_col and opts.id_col not in row:
        raise InputError(str(path), f"no id column {opts.id_col!r}; columns found: {', '.join(map(str, columns))}")
    rid = str(row[id_col]) if id_col and row[id_col] not in (None, "") else f"{path.stem}:{number}"
    carried = {k: v for k, v in row.items() if k != opts.text_col}
    doc_id = str(row.get("doc_id") or rid)
    problem = _check_text(text, where)
    if problem:
        yield Item(rid, doc_id, "", carried=carried, where=where, error=problem)
    elif opts.split_tables:
        yield from _articles(path, text, rid, stats, carried, where)
    else:
        yield Item(rid, doc_id, text, None, carried, where=where)


def _csv_rows(path: Path, opts: ReadOptions) -> Iterator[tuple[int, str, dict]]:
    raw_head = _read_bytes(path)[:8192]
    if b"\x00" in raw_head:
        raise InputError(str(path), "looks like a binary file (contains NUL bytes), not text")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    csv.field_size_limit(sys.maxsize)
    with open(path, encoding=opts.encoding, newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        number = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as e:
                raise InputError(f"{path}:{reader.line_num + 1}", f"cannot decode as {opts.encoding} ({e.reason}); "
                                 f"pass --encoding (for example --encoding cp1252)") from None
            except csv.Error as e:
                raise InputError(f"{path}:{reader.line_num}", f"malformed CSV: {e}") from None
            number += 1
            if None in row:
                yield number, f"{path} row {number} (line {reader.line_num})", {"__error__": "more fields than the header"}
                continue
            yield number, f"{path} row {number} (line {reader.line_num})", row


def _jsonl_rows(path: Path, opts: ReadOptions) -> Iterator[tuple[int, str, dict]]:
    if b"\x00" in _read_bytes(path)[:8192]:
        raise InputError(str(path), "looks like a binary file (contains NUL bytes), not text")
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            where = f"{path}:{n}"
            try:
                line = raw.decode(opts.encoding)
            except UnicodeDecodeError:
                yield n, where, {"__error__": f"cannot decode as {opts.encoding}; pass --encoding"}
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                yield n, where, {"__error__": f"bad JSON ({e.msg}, column {e.colno})"}
                continue
            if not isinstance(obj, dict):
                yield n, where, {"__error__": "a line must be a JSON object"}
                continue
            yield n, where, obj


def _parquet_rows(path: Path, opts: ReadOptions) -> Iterator[tuple[int, str, dict]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:
        raise InputError(str(path), f"not a readable Parquet file ({e})") from None
    number = 0
    for batch in pf.iter_batches(batch_size=2048):
        for row in batch.to_pylist():
            number += 1
            yield number, f"{path} row {number}", row


def is_input_file(path: Path) -> bool:
    """Whether ``read_items`` reads this file (others are counted as ignored)."""
    return path.suffix.lower() in ARTICLE_SUFFIXES | TABLE_SUFFIXES


def read_items(paths: list[Path], opts: ReadOptions, stats: Stats) -> Iterator[Item]:
    """Every paragraph or row of every input, in order; problems come as items with ``error``.

    Every file that is read yields at least one item (an error item when it holds nothing to label).
    """
    for path in paths:
        suffix = path.suffix.lower()
        if not is_input_file(path):
            stats.ignored_files += 1
            continue
        stats.files += 1
        try:
            if path.stat().st_size == 0:
                raise InputError(str(path), "the file is empty")
            if suffix in ARTICLE_SUFFIXES:
                text = _decode(_read_bytes(path), path, opts.encoding)
                if not text.strip():
                    raise InputError(str(path), "the file is empty (only whitespace)")
                yield from _articles(path, text, path.stem, stats)
                continue
            rows = {".csv": _csv_rows, ".tsv": _csv_rows, ".parquet": _parquet_rows}.get(suffix, _jsonl_rows)
            columns = table_columns(path, opts)
            any_row = False
            for number, where, row in rows(path, opts):
                any_row = True
                if "__error__" in row:
                    yield Item("", "", "", where=where, error=InputError(where, row["__error__"]))
                    continue
                yield from _table_item(row, path, where, number, opts, stats, columns)
            if not any_row:
                raise InputError(str(path), "the table has no rows")
        except InputError as e:
            yield Item("", "", "", where=e.where, error=e)
