"""The annotation-loop subcommands: ``import``, ``tasks``, ``agreement`` and ``suggest``.

Thin wrappers over ``stance.annotation`` and ``stance.suggest``; registered on the ``stance``
command by ``add_annotation_parsers``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .errors import StanceError


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def _codebook(path):
    from .codebook import Codebook

    return Codebook.load(path)


def _read_options(args):
    from .inputs import ReadOptions

    return ReadOptions(text_col=args.text_col, id_col=args.id_col, encoding=args.encoding,
                       split_tables=args.split_paragraphs)


def _labeler(args, codebook=None):
    from .labeler import Labeler

    return Labeler.from_pretrained(args.model, backend=args.backend, batch_size=args.batch_size,
                                   codebook=codebook, threads=args.threads, progress=False, log=_log)


def _model_version(labeler) -> str:
    return f"{Path(labeler.folder).name} (codebook {labeler.codebook.name} {labeler.codebook.version})".strip()


def _check_output(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise StanceError(f"{path} exists; use --force to overwrite")


# -- import -------------------------------------------------------------------------------------
def cmd_import(args) -> int:
    from .annotation import import_annotations, write_import

    if (args.output is None) == (args.split_by_annotator is None):
        raise StanceError("give either -o OUT.jsonl or --split-by-annotator DIR")
    if args.output is not None:
        _check_output(Path(args.output), args.force)
    result = import_annotations(args.files, args.tool, _codebook(args.codebook),
                                missing_as_absent=args.missing_as_absent, annotator=args.annotator)
    if not result.records:
        _log(result.summary())
        raise StanceError("nothing to import: no completed annotations in the file(s)")
    written = write_import(result, args.output, args.split_by_annotator)
    _log(result.summary())
    for path in written:
        _log(f"wrote {path}")
    return 0


# -- tasks --------------------------------------------------------------------------------------
def cmd_tasks(args) -> int:
    from .annotation import item_row, predict_items, read_paragraphs, write_tasks

    out = Path(args.output)
    _check_output(out, args.force)
    items = read_paragraphs(args.inputs, _read_options(args), log=_log)
    if args.no_predictions:
        codebook = _codebook(args.codebook)
        rows, version = [item_row(it) for it in items], None
    else:
        labeler = _labeler(args, _codebook(args.codebook) if args.codebook else None)
        codebook = labeler.codebook
        rows, _, _ = predict_items(labeler, items)
        version = _model_version(labeler)
    written = write_tasks(rows, codebook, args.tool, out, config=args.config, model_version=version)
    _log(f"wrote {len(rows)} {args.tool} task(s) to {written[0]}"
         + "".join(f"; {p.name}" for p in written[1:]))
    return 0


# -- agreement ----------------------------------------------------------------------------------
def cmd_agreement(args) -> int:
    from .annotation import agreement_report, write_jsonl

    from .data import ValidationError

    try:
        report = agreement_report(args.passes, _codebook(args.codebook), model=args.model, backend=args.backend,
                                  n_boot=args.n_boot, seed=args.seed, log=_log)
    except ValidationError as e:  # a pass that breaks the codebook: exit 1, like stance validate
        print(f"stance agreement: error: {e}", file=sys.stderr)
        return 1
    if args.disagreements:
        write_jsonl(report.disagreements, args.disagreements)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"coders": report.coders, **report.result,
                                                   "alpha_humans": (report.humans or {}).get("alpha")},
                                                  indent=1, default=str) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(report.alphas()))
    else:
        print(report.table())
        if args.disagreements:
            print(f"\n{len(report.disagreements)} disagreement(s) written to {args.disagreements}")
    if report.result["n"] == 0:
        _log("warning: no paragraph was labelled by two coders; check that the passes share ids")
    return 0


# -- suggest ------------------------------------------------------------------------------------
def cmd_suggest(args) -> int:
    from .annotation import read_paragraphs, write_jsonl, write_tasks
    from .suggest import suggest

    out = Path(args.output)
    _check_output(out, args.force)
    items = read_paragraphs(args.inputs, _read_options(args), log=_log)
    labeler = _labeler(args, _codebook(args.codebook) if args.codebook else None)
    rows = suggest(items, labeler, n=args.n, per_doc=args.per_doc, strategy=args.strategy,
                   dedup_words=args.dedup_words, exclude=args.exclude, log=_log)
    if args.tool == "jsonl":
        write_jsonl(rows, out)
        written = [out]
    else:
        written = write_tasks(rows, labeler.codebook, args.tool, out, config=args.config,
                              model_version=_model_version(labeler))
    docs = len({r["doc_id"] for r in rows})
    _log(f"suggested {len(rows)} paragraph(s) from {docs} document(s) of {len(items)} candidates -> "
         + ", ".join(map(str, written)))
    return 0


# -- parsers ------------------------------------------------------------------------------------
def _input_options(p) -> None:
    p.add_argument("inputs", nargs="+", help="files or folders: .txt .md .html, .csv .tsv .jsonl .parquet")
    p.add_argument("--text-col", default="text")
    p.add_argument("--id-col")
    p.add_argument("--encoding", default="utf-8")
    p.add_argument("--split-paragraphs", action="store_true",
                   help="treat each table row as an article and split it into paragraphs")


def _model_options(p) -> None:
    p.add_argument("--model", help="model folder (default: the shipped models/default)")
    p.add_argument("--backend", default="torch", choices=["torch", "onnx", "onnx-int8"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int)


def add_annotation_parsers(sub) -> None:
    from .annotation import IMPORT_FORMATS, TASK_FORMATS
    from .suggest import STRATEGIES

    p = sub.add_parser(
        "import", help="convert annotation-tool exports into the codebook's JSONL",
        description="Convert Label Studio (JSON), Prodigy (JSONL), doccano (JSONL) or CSV exports into the "
                    "codebook's JSONL, keeping each record's annotator. Rejected and ignored Prodigy answers "
                    "and cancelled Label Studio annotations are dropped and counted. Exit codes: 0 done, "
                    "1 problems in the exports (each listed as file:line or file: task N; nothing is "
                    "written), 2 a usage problem (missing file, several annotators without "
                    "--split-by-annotator, existing output).")
    p.add_argument("files", nargs="+", help="export file(s) of one tool")
    p.add_argument("--from", dest="tool", required=True, choices=IMPORT_FORMATS)
    p.add_argument("--codebook", help="codebook YAML (default: seeds/codebook.yaml)")
    p.add_argument("-o", "--output", help="output JSONL (one pass: each paragraph once)")
    p.add_argument("--split-by-annotator", metavar="DIR",
                   help="write one pass per annotator, DIR/<annotator>.jsonl")
    p.add_argument("--missing-as-absent", action="store_true",
                   help="record an actor without a stance as the codebook's absent value instead of an error")
    p.add_argument("--annotator", help="annotator name where the export has none (default: the file name)")
    p.add_argument("--force", action="store_true", help="overwrite an existing -o file")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser(
        "tasks", help="write annotation tasks pre-filled with a model's predictions",
        description="Write the inputs' paragraphs as tasks for Label Studio (a JSON list of tasks with "
                    "predictions and scores, plus the labelling configuration OUT.config.xml generated from "
                    "the codebook), Prodigy (choice-interface JSONL) or doccano (JSONL plus OUT.labels.json). "
                    "Exit codes: 0 done (skipped inputs are listed), 2 a usage, model or output problem.")
    _input_options(p)
    p.add_argument("--to", dest="tool", required=True, choices=TASK_FORMATS)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--config", help="where to write the Label Studio XML (default: OUT.config.xml)")
    p.add_argument("--codebook", help="codebook YAML (must match the model's; needed with --no-predictions)")
    p.add_argument("--no-predictions", action="store_true", help="write empty tasks, without a model")
    _model_options(p)
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser(
        "agreement", help="inter-coder agreement of annotation passes (alpha, kappa)",
        description="Krippendorff's alpha (nominal, any number of coders, missing values allowed) per frame, "
                    "actor stance and actor reference, with bootstrap intervals resampled by document, and "
                    "Cohen's kappa for each pair of coders. Passes are aligned by id. With --model the model "
                    "labels every paragraph and counts as one more coder. Exit codes: 0 done, 1 a pass that "
                    "breaks the codebook (listed as file:line), 2 a usage or model problem.")
    p.add_argument("passes", nargs="+", metavar="PASS.jsonl", help="one annotation pass per coder")
    p.add_argument("--codebook")
    p.add_argument("--model", help="add this model folder as a coder")
    p.add_argument("--backend", default="torch", choices=["torch", "onnx", "onnx-int8"])
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: alpha per frame:<id>, stance:<actor>, reference:<actor>, and n")
    p.add_argument("--json-out", help="also write the full result (intervals, kappa) as JSON")
    p.add_argument("--disagreements", default="disagreements.jsonl",
                   help="JSONL of every (paragraph, field) where coders differ, for adjudication "
                        "(default: disagreements.jsonl; '' to skip)")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_agreement)

    p = sub.add_parser(
        "suggest", help="pick the paragraphs the model is least sure of, for annotation",
        description="Label the inputs and pick the N paragraphs whose labels the model is least sure of "
                    "(entropy or margin over each actor's stance, closeness to the threshold for frames), "
                    "round-robin over actors and frames, at most --per-doc per document, without "
                    "near-duplicates. Writes JSONL with uncertainty fields, or tasks (--to). Exit codes: "
                    "0 done, 2 a usage, model or output problem.")
    _input_options(p)
    p.add_argument("-n", type=int, default=200, help="how many paragraphs (default 200)")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--to", dest="tool", default="jsonl", choices=("jsonl",) + TASK_FORMATS)
    p.add_argument("--strategy", default="entropy", choices=STRATEGIES)
    p.add_argument("--per-doc", type=int, default=2, help="at most this many paragraphs per document")
    p.add_argument("--dedup-words", type=int, default=12,
                   help="paragraphs whose first N words match are near-duplicates (default 12)")
    p.add_argument("--exclude", nargs="+", metavar="FILE", help="JSONL of paragraphs already annotated")
    p.add_argument("--config", help="where to write the Label Studio XML (default: OUT.config.xml)")
    p.add_argument("--codebook", help="codebook YAML (must match the model's)")
    _model_options(p)
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=cmd_suggest)
