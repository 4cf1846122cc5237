"""Ship a trained TIRG checkpoint: fp16 weights, evaluated as shipped, with a model card.

    python scripts/ship_tirg.py runs/<run>/checkpoint.pt --dataset_path CSSDataset --out models/tirg-css.pt

The weights are rounded to fp16 (half the file: the demo ships <= 40 MB of models) and the rounded
model is evaluated in fp32, as the server runs it, on the whole test split with the paper's protocol.
The card (`<out>.md`, `<out>.json`) records the data, the training command, iterations, wall time and
that Recall@K. The run's results.json (beside the checkpoint) supplies the training options.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import _bootstrap  # noqa: F401
import torch


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a training run's checkpoint.pt")
    parser.add_argument("--dataset_path", type=Path, default=Path("CSSDataset"))
    parser.add_argument("--out", type=Path, default=Path("models/tirg-css.pt"))
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--started_from", type=Path, default=None,
                        help="the checkpoint the run continued from, where its results.json does not record it")
    return parser.parse_args(argv)


def training_command(run: dict, model_name: str, dataset_path: Path, started_from: str | None) -> str:
    options = run.get("options", {})
    flags = {"dataset": "css3d", "dataset_path": dataset_path, "checkpoint": started_from,
             "num_iters": options.get("num_iters"), "model": model_name, "loss": options.get("loss"),
             "batch_size": options.get("batch_size"), "learning_rate": options.get("learning_rate"),
             "learning_rate_decay_frequency": options.get("learning_rate_decay_frequency"),
             "precision": options.get("precision")}
    frozen = " --freeze_image_encoder" if options.get("freeze_image_encoder") else ""
    return "python -m tirg " + " ".join(f"--{k}={v}" for k, v in flags.items() if v is not None) + frozen


def training_stages(checkpoint: Path, model_name: str, dataset_path: Path, started_from: Path | None) -> list[dict]:
    """The run that wrote `checkpoint`, after the runs it continued from (oldest first). A run records its
    starting checkpoint in results.json (options.started_from); `started_from` overrides it for the newest.
    A shipped model (a file with its card, `<name>.json`, beside it) brings the stages its card lists."""
    from tirg.checkpoint import read_checkpoint

    stages: list[dict] = []
    while checkpoint is not None:
        results_file = checkpoint.parent / "results.json"
        card_file = checkpoint.with_suffix(".json")
        if not results_file.is_file() and card_file.is_file():
            return json.loads(card_file.read_text())["training"]["stages"] + stages
        run = json.loads(results_file.read_text()) if results_file.is_file() else {}
        meta = read_checkpoint(checkpoint).get("meta", {})
        parent = started_from or run.get("options", {}).get("started_from")
        stages.insert(0, {"run": checkpoint.parent.name, "iterations": meta.get("iteration"),
                          "wall_time_s": meta.get("wall_time_s"),
                          "command": training_command(run, model_name, dataset_path, parent and str(parent)),
                          "test_at_end_of_training": run.get("test")})
        checkpoint, started_from = (Path(parent) if parent else None), None
    return stages


def training_summary(stages: list[dict]) -> dict:
    return {"iterations": sum(stage["iterations"] or 0 for stage in stages),
            "wall_time_s": round(sum(stage["wall_time_s"] or 0 for stage in stages), 1), "stages": stages}


def write_card(args: argparse.Namespace, card: dict) -> Path:
    path = args.out.with_suffix(".md")
    run = card["training"]
    recall = ", ".join(f"{k} {v:.1f}" for k, v in card["test"].items())
    path.write_text(
        f"# {args.out.name}: the offline demo's TIRG\n\n"
        f"- Model: `{card['config']['model']}` (Vo et al., CVPR 2019), backbone {card['config']['backbone']} "
        f"(random init), {card['config']['image_size']} px images, {card['config']['embed_dim']}-d vectors, "
        f"vocabulary {card['vocabulary']} words; {card['parameters'] / 1e6:.1f}M parameters, weights in fp16 "
        f"({args.out.stat().st_size / 1e6:.1f} MB).\n"
        f"- Data: the generated CSS-style set (`python scripts/make_css.py --out {args.dataset_path}`, 3d "
        f"renderer), train split {card['train_images']} images.\n"
        f"- Training, {run['iterations']} iterations in {run['wall_time_s'] / 60:.0f} min on this project's "
        f"2-core CPU:\n" + "".join(
            f"  - `{stage['command']}` — {stage['iterations']} iterations, {stage['wall_time_s'] / 60:.0f} min "
            f"(run `{stage['run']}`)\n" for stage in run["stages"]) +
        f"- Test split ({card['test_images']} images, {card['test_queries']} queries, the paper's protocol: "
        f"query image excluded, a hit is the target's scene), these fp16 weights evaluated in fp32: {recall}.\n"
        f"- Shipped with: `python scripts/ship_tirg.py {args.checkpoint} --dataset_path {args.dataset_path} "
        f"--out {args.out}" + (f" --started_from {args.started_from}" if args.started_from else "") + "`\n"
        f"- Serve: `TIRG_CHECKPOINT={args.out}`.\n")
    args.out.with_suffix(".json").write_text(json.dumps(card, indent=2))
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from tirg.checkpoint import load_model, round_weights, save_checkpoint
    from tirg.data import CSSDataset, ImageNormalizer
    from tirg.evaluate import evaluate

    if args.threads:
        torch.set_num_threads(args.threads)
    model = round_weights(load_model(args.checkpoint), torch.float16)
    config = model.config
    test_set = CSSDataset(args.dataset_path, "test", config.image_size)
    started = time.monotonic()
    print(f"evaluating the fp16 weights on {len(test_set.queries)} test queries ...", flush=True)
    recall = evaluate(model, test_set, ImageNormalizer(config.image_mean, config.image_std, torch.device("cpu")))
    card = {
        "test": {k: round(v, 2) for k, v in recall.items()}, "eval_s": round(time.monotonic() - started, 1),
        "config": config.to_dict(), "vocabulary": len(model.vocabulary),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_images": len(CSSDataset(args.dataset_path, "train", config.image_size, load_images=False)),
        "test_images": len(test_set), "test_queries": len(test_set.queries),
        "training": training_summary(training_stages(args.checkpoint, config.model, args.dataset_path,
                                                     args.started_from)),
    }
    save_checkpoint(args.out, model, weights_dtype=torch.float16, shipped_from=args.checkpoint.parent.name,
                    iteration=card["training"]["iterations"], test=card["test"])
    print(json.dumps(card["test"]), f"-> {args.out} ({write_card(args, card)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
