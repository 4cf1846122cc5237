"""Reproduce the paper's CSS table: train every model with the same budget and write docs/results.md.

    python scripts/bench_tirg.py [--dataset_path CSSDataset] [--num_iters 10000] [--decay 7500]
                                 [--loss batch_based_classification] [--precision bf16] [--parallel 2]
                                 [--models tirg concat image_only text_only] [--out docs/results_table.md]

A model that already has a finished run with the same settings under runs/ (results.json, comment
_css3d_<model>) is not trained again, so the table can be completed over several sittings.
Each training is `python -m tirg ...` exactly as printed in the table. `--parallel 2` trains two
models at a time with one torch thread each: on the 2-core machine that gives 6.2 it/s together
against 5.5 it/s for one run on both cores.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import _bootstrap  # noqa: F401

ROOT = _bootstrap.ROOT
PAPER_CSS_3D = {"image_only": 6.3, "text_only": 0.1, "concat": 60.6, "tirg": 73.7, "tirg_lastconv": None}


def command(args: argparse.Namespace, model: str) -> list[str]:
    return [sys.executable, "-m", "tirg", "--dataset=css3d", f"--dataset_path={args.dataset_path}",
            f"--num_iters={args.num_iters}", f"--model={model}", f"--loss={args.loss}",
            f"--comment=_css3d_{model}", f"--learning_rate_decay_frequency={args.decay}",
            f"--eval_every={args.eval_every}", f"--precision={args.precision}",
            f"--threads={args.threads}"]


def _newest_first(paths: list[Path]) -> list[tuple[Path, dict]]:
    """By the finish time a run records (run names start with a month name, which sorts as text:
    "Nov" after "Dec"); a run older than that record falls back to its file's modification time."""
    results = [(path, json.loads(path.read_text())) for path in paths]

    def finished(item: tuple[Path, dict]) -> str:
        path, result = item
        return result.get("finished_at") or datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat()

    return sorted(results, key=finished, reverse=True)


def finished_run(runs: Path, model: str, args: argparse.Namespace) -> dict | None:
    """The newest results.json of a run of `model` with these settings."""
    for path, result in _newest_first(list(runs.glob(f"*_css3d_{model}/results.json"))):
        options = result["options"]
        asked = options.get("precision_requested") or options.get("precision", "fp32")
        if (options["num_iters"], options["loss"], options["learning_rate_decay_frequency"],
                asked) == (args.num_iters, args.loss, args.decay, args.precision):
            return {**result, "run": path.parent.name}
    return None


def train_missing(args: argparse.Namespace) -> None:
    """Train the models without a finished run, `args.parallel` at a time; each logs to its run dir."""
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    missing = [m for m in args.models if finished_run(args.runs_dir, m, args) is None]
    for start in range(0, len(missing), args.parallel):
        group = missing[start:start + args.parallel]
        processes = []
        with contextlib.ExitStack() as logs:
            for model in group:
                print(" ".join(command(args, model)), flush=True)
                log = logs.enter_context(open(args.runs_dir / f"train_{model}.log", "w"))
                processes.append((model, subprocess.Popen(command(args, model), cwd=ROOT, stdout=log,
                                                          stderr=subprocess.STDOUT)))
            failed = [model for model, process in processes if process.wait() != 0]
        if failed:
            raise SystemExit(f"training failed: {failed}; see {args.runs_dir}/train_<model>.log")


def table(results: dict[str, dict], args: argparse.Namespace) -> str:
    lines = ["| model | R@1 | R@5 | R@10 | R@50 | paper R@1 (CSS 3D->3D) | wall time | hardware, precision | run |",
             "|---|---|---|---|---|---|---|---|---|"]
    for model, result in results.items():
        test = result["test"]
        paper = PAPER_CSS_3D.get(model)
        lines.append(f"| {model} | {test['R@1']:.1f} | {test['R@5']:.1f} | {test['R@10']:.1f} | "
                     f"{test['R@50']:.1f} | {paper if paper is not None else '-'} | "
                     f"{result['wall_time_s'] / 60:.0f} min | {_ran_on(result)} | `{result['run']}` |")
    return "\n".join(lines)


def _ran_on(result: dict) -> str:
    options = result["options"]
    return f"{options.get('hardware') or 'not recorded'}, {options.get('precision', 'fp32')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_path", default="./CSSDataset")
    parser.add_argument("--num_iters", type=int, default=10000)
    parser.add_argument("--decay", type=int, default=7500, help="--learning_rate_decay_frequency")
    parser.add_argument("--eval_every", type=int, default=5000)
    parser.add_argument("--loss", default="batch_based_classification")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="auto: bf16 where the CPU computes it natively (AVX-512 BF16, AMX), else fp32")
    parser.add_argument("--parallel", type=int, default=2, help="trainings at a time")
    parser.add_argument("--models", nargs="+", default=["tirg", "concat", "image_only", "text_only"])
    parser.add_argument("--runs_dir", type=Path, default=ROOT / "runs")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results_table.md")
    args = parser.parse_args(argv)
    args.threads = max(1, (os.cpu_count() or 1) // args.parallel)

    train_missing(args)
    results = {model: finished_run(args.runs_dir, model, args) for model in args.models}
    commands = "\n".join(" ".join(["python"] + command(args, m)[1:]) for m in args.models)
    text = (f"{table(results, args)}\n\nCommands (same budget each: {args.num_iters} iterations, batch 32, "
            f"{args.loss}, {args.precision}, SGD momentum 0.9, lr 0.01 x0.1 after {args.decay}, "
            f"{args.parallel} at a time):\n\n```bash\n{commands}\n```\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
