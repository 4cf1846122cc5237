"""Reproduce the paper's CSS table: train every model with the same budget and write docs/results.md.

    python scripts/bench_tirg.py [--dataset_path CSSDataset] [--num_iters 15000]
                                 [--models tirg concat image_only text_only] [--out docs/results.md]

A model that already has a finished run with the same settings under runs/ (results.json, comment
_css3d_<model>) is not trained again, so the table can be completed over several sittings.
Each training is `python -m tirg ...` exactly as printed in the table.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import _bootstrap  # noqa: F401

ROOT = _bootstrap.ROOT
PAPER_CSS_3D = {"image_only": 6.3, "text_only": 0.1, "concat": 60.6, "tirg": 73.7, "tirg_lastconv": None}


def command(args: argparse.Namespace, model: str) -> list[str]:
    return [sys.executable, "-m", "tirg", "--dataset=css3d", f"--dataset_path={args.dataset_path}",
            f"--num_iters={args.num_iters}", f"--model={model}", f"--loss={args.loss}",
            f"--comment=_css3d_{model}", f"--learning_rate_decay_frequency={args.decay}",
            f"--eval_every={args.eval_every}"]


def finished_run(runs: Path, model: str, args: argparse.Namespace) -> dict | None:
    """The newest results.json of a run of `model` with these settings."""
    for path in sorted(runs.glob(f"*_css3d_{model}/results.json"), reverse=True):
        result = json.loads(path.read_text())
        options = result["options"]
        if (options["num_iters"], options["loss"], options["learning_rate_decay_frequency"]) == (
                args.num_iters, args.loss, args.decay):
            return {**result, "run": path.parent.name}
    return None


def table(results: dict[str, dict], args: argparse.Namespace) -> str:
    lines = ["| model | R@1 | R@5 | R@10 | R@50 | paper R@1 (CSS 3D->3D) | wall time | run |",
             "|---|---|---|---|---|---|---|---|"]
    for model, result in results.items():
        test = result["test"]
        paper = PAPER_CSS_3D.get(model)
        lines.append(f"| {model} | {test['R@1']:.1f} | {test['R@5']:.1f} | {test['R@10']:.1f} | "
                     f"{test['R@50']:.1f} | {paper if paper is not None else '-'} | "
                     f"{result['wall_time_s'] / 60:.0f} min | `{result['run']}` |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_path", default="./CSSDataset")
    parser.add_argument("--num_iters", type=int, default=15000)
    parser.add_argument("--decay", type=int, default=11000, help="--learning_rate_decay_frequency")
    parser.add_argument("--eval_every", type=int, default=3750)
    parser.add_argument("--loss", default="soft_triplet")
    parser.add_argument("--models", nargs="+", default=["tirg", "concat", "image_only", "text_only"])
    parser.add_argument("--runs_dir", type=Path, default=ROOT / "runs")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results_table.md")
    args = parser.parse_args(argv)

    results = {}
    for model in args.models:
        if finished_run(args.runs_dir, model, args) is None:
            print(" ".join(command(args, model)), flush=True)
            subprocess.run(command(args, model), cwd=ROOT, check=True)
        results[model] = finished_run(args.runs_dir, model, args)
    commands = "\n".join(" ".join(["python"] + command(args, m)[1:]) for m in args.models)
    text = (f"{table(results, args)}\n\nCommands (same budget each: {args.num_iters} iterations, batch 32, "
            f"SGD momentum 0.9, lr 0.01 x0.1 after {args.decay}):\n\n```bash\n{commands}\n```\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
