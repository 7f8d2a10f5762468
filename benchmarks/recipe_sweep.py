"""Train several recipes on the same splits and compare them on dev and test, fast on a GPU.

    python benchmarks/recipe_sweep.py                          # every recipe in recipes.json, on a GPU if any
    python benchmarks/recipe_sweep.py --only shipped top3_e10  # some of them
    python benchmarks/recipe_sweep.py --device cpu --limit 300 --epochs 1   # a smoke run on a laptop

A recipe is a name and the ``TrainConfig`` fields it changes from the shipped rebuild command
(``--char-ngrams 2 5 --epochs 5 --lora-layers 3 --lora-dropout 0 --attention-dropout 0 --bf16``);
``lora_r`` alone also sets ``lora_alpha`` to 2r, as the command does. Each recipe is trained with
``stance.train.train`` on train, stopped early and mixed on dev, and scored on dev and test as it
would label: frames macro-F1, stance macro-F1 and reference F1, and stance of the encoder side
alone. The lexical side is fitted once per seed and n-gram setting and shared.

Results go to ``benchmarks/results/recipe_sweep.json`` after every recipe; a run started again
skips the recipes already there (``--fresh`` starts over), so a sweep cut short loses nothing.
Figures from a GPU are for comparing recipes with each other; the shipped model's own figures
come from its CPU rebuild.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stance.codebook import Codebook  # noqa: E402
from stance.data import read_records  # noqa: E402
from stance.errors import StanceError  # noqa: E402
from stance.evaluate import predict_records  # noqa: E402
from stance.metrics import score  # noqa: E402
from stance.train import TrainConfig, fit_lexical, resolve_device, train  # noqa: E402

SHIPPED = dict(lexical_char_ngrams=(2, 5), epochs=5, lora_layers=3, lora_dropout=0.0, attention_dropout=0.0,
               bf16=True)
HEADLINE = (("frames", "frames_macro_f1"), ("stance", "stance_macro_f1"), ("reference", "reference_f1"))


def recipe_config(overrides: dict, device: str, epochs: int | None = None) -> TrainConfig:
    fields = {**SHIPPED, **overrides, "device": device, "progress": False}
    if "lora_r" in overrides and "lora_alpha" not in overrides:
        fields["lora_alpha"] = 2.0 * overrides["lora_r"]
    if fields.get("lexical_char_ngrams"):
        fields["lexical_char_ngrams"] = tuple(fields["lexical_char_ngrams"])
    if epochs:
        fields["epochs"] = epochs
    unknown = set(fields) - set(TrainConfig.__dataclass_fields__)
    if unknown:
        raise SystemExit(f"recipe fields not in TrainConfig: {', '.join(sorted(unknown))}")
    return TrainConfig(**fields)


def figures(gold: list[dict], pred: list[dict], codebook: Codebook) -> dict:
    s = score(gold, pred, codebook, n_boot=0)
    return {name: round(s[key]["value"], 4) for name, key in HEADLINE if s.get(key)}


def evaluate(model, lexical, records, codebook, device) -> dict:
    """As labelled (lexical side mixed in, thresholds), and the encoder side alone."""
    gold = [r.to_json() for r in records]
    model.to(device)
    try:
        out = figures(gold, predict_records(model, records, batch_size=64, lexical=lexical), codebook)
        saved = model.config.lexical_weights
        model.config.lexical_weights = {}
        try:
            alone = figures(gold, predict_records(model, records, batch_size=64, lexical=None), codebook)
        finally:
            model.config.lexical_weights = saved
    finally:
        model.to("cpu")
    out["stance_encoder_alone"] = alone["stance"]
    return out


def run(args) -> dict:
    codebook = Codebook.load(args.codebook)
    recipes = json.loads(Path(args.recipes).read_text())
    names = [r["name"] for r in recipes]
    if len(set(names)) != len(names):
        raise SystemExit(f"{args.recipes}: recipe names must be unique")
    if args.only:
        missing = set(args.only) - set(names)
        if missing:
            raise SystemExit(f"{args.recipes}: no recipe named {', '.join(sorted(missing))}")
        recipes = [r for r in recipes if r["name"] in args.only]
    device = resolve_device(args.device)
    splits = {s: read_records([getattr(args, s)], codebook) for s in ("train", "dev", "test")}
    if args.limit:
        splits = {s: rs[:args.limit] for s, rs in splits.items()}
    out_path = Path(args.out)
    results = {} if args.fresh or not out_path.exists() else json.loads(out_path.read_text()).get("recipes", {})
    meta = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
            "device": (f"cuda: {__import__('torch').cuda.get_device_name(device)}" if device.type == "cuda"
                       else "cpu"),
            "torch": __import__("torch").__version__, "python": platform.python_version(),
            "n": {s: len(rs) for s, rs in splits.items()}, "shipped_recipe": {k: v for k, v in SHIPPED.items()}}
    lexicals = {}
    for recipe in recipes:
        name = recipe["name"]
        if name in results:
            print(f"{name}: already in {out_path}, skipped", file=sys.stderr)
            continue
        config = recipe_config(recipe.get("config", {}), str(device), args.epochs)
        key = (config.seed, config.lexical_char_ngrams)
        if config.lexical and key not in lexicals:
            t = time.time()
            lexicals[key] = fit_lexical(splits["train"], codebook, config)
            print(f"lexical side fitted in {time.time() - t:.0f} s", file=sys.stderr)
        started = time.time()
        result = train(splits["train"], splits["dev"], codebook, config,
                       log=(lambda m: print(f"  [{name}] {m}", file=sys.stderr)),
                       lexical=lexicals.get(key) if config.lexical else None)
        seconds = time.time() - started
        entry = {"config": recipe.get("config", {}), "train_seconds": round(seconds, 1),
                 "epochs_run": len(result.history),
                 "best_epoch": max(result.history, key=lambda h: h.get("dev_primary", 0))["epoch"],
                 "lexical_weights": result.model.config.lexical_weights,
                 "history": result.history}
        for split in ("dev", "test"):
            entry[split] = evaluate(result.model, result.lexical, splits[split], codebook, device)
        results[name] = entry
        print(f"{name}: dev {entry['dev']}  test {entry['test']}  ({seconds:.0f} s)", file=sys.stderr)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps({"meta": meta, "recipes": results}, indent=1) + "\n")
    return {"meta": meta, "recipes": results}


def table(results: dict) -> str:
    rows = ["| recipe | dev frames / stance / ref | dev stance, encoder alone | test frames / stance / ref "
            "| test stance, encoder alone | epochs (best) | train s |", "|---|---|---|---|---|---|---|"]
    for name, e in results["recipes"].items():
        d, t = e["dev"], e["test"]
        rows.append(f"| {name} | {d.get('frames', 0):.3f} / {d['stance']:.3f} / {d['reference']:.3f} "
                    f"| {d['stance_encoder_alone']:.3f} | {t.get('frames', 0):.3f} / {t['stance']:.3f} / "
                    f"{t['reference']:.3f} | {t['stance_encoder_alone']:.3f} | {e['epochs_run']} ({e['best_epoch']}) "
                    f"| {e['train_seconds']:.0f} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    corpus = ROOT / "seeds" / "corpus"
    p.add_argument("--recipes", default=str(ROOT / "benchmarks" / "recipes.json"))
    p.add_argument("--only", nargs="+", help="run only these recipes")
    p.add_argument("--train", default=str(corpus / "train.jsonl"))
    p.add_argument("--dev", default=str(corpus / "dev.jsonl"))
    p.add_argument("--test", default=str(corpus / "test.jsonl"))
    p.add_argument("--codebook", default=str(ROOT / "seeds" / "codebook.yaml"))
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--limit", type=int, help="the first N paragraphs of each split (smoke runs)")
    p.add_argument("--epochs", type=int, help="override every recipe's epochs (smoke runs)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "recipe_sweep.json"))
    p.add_argument("--fresh", action="store_true", help="ignore results already in --out")
    args = p.parse_args(argv)
    try:
        results = run(args)
    except StanceError as e:
        print(f"recipe_sweep: {e}", file=sys.stderr)
        return 2
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
