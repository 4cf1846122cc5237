"""Training loop: SGD with momentum 0.9 as in the paper, tensorboard logs, checkpoints, periodic
evaluation on a fixed subset of training queries and on the whole test split."""
from __future__ import annotations

import contextlib
import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from tirg.checkpoint import save_checkpoint
from tirg.data import CSSDataset, ImageNormalizer
from tirg.evaluate import evaluate
from tirg.losses import LOSSES
from tirg.models import ComposeModel


@dataclass
class TrainOptions:
    num_iters: int
    batch_size: int = 32
    learning_rate: float = 1e-2
    weight_decay: float = 1e-6
    learning_rate_decay_frequency: int = 9_999_999
    loss: str = "soft_triplet"
    eval_every: int = 2000
    precision: str = "fp32"  # "bf16": forward passes under bf16 autocast (1.3x faster on AVX-512 BF16 CPUs)
    precision_requested: str | None = None  # what --precision asked for (tirg.hardware.choose_precision decides)
    hardware: str | None = None  # tirg.hardware.describe_hardware(): the CPU class or CUDA device it ran on
    train_eval_queries: int = 2000
    seed: int = 0
    started_from: str | None = None  # the checkpoint training continued from, recorded in results.json


def make_optimizer(model: ComposeModel, options: TrainOptions) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=options.learning_rate, momentum=0.9,
                           weight_decay=options.weight_decay)


def _decayed_lr(options: TrainOptions, iteration: int) -> float:
    return options.learning_rate * 0.1 ** (iteration // options.learning_rate_decay_frequency)


class Trainer:
    def __init__(self, model: ComposeModel, train_set: CSSDataset, test_set: CSSDataset,
                 options: TrainOptions, run_dir: Path, device: torch.device):
        self.model, self.train_set, self.test_set = model, train_set, test_set
        self.options, self.run_dir, self.device = options, run_dir, device
        self.normalizer = ImageNormalizer(model.config.image_mean, model.config.image_std, device)
        self.optimizer = make_optimizer(model, options)
        self.loss_fn = LOSSES[options.loss]
        self.rng = random.Random(options.seed)
        eval_rng = random.Random(options.seed + 1)
        self.train_eval_queries = eval_rng.sample(train_set.queries,
                                                  min(options.train_eval_queries, len(train_set.queries)))
        self.writer = SummaryWriter(log_dir=str(run_dir))
        self.history: list[dict] = []

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.options.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def step(self, iteration: int) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = _decayed_lr(self.options, iteration)
        batch = self.train_set.sample_queries(self.options.batch_size, self.rng)
        sources = self.normalizer(self.train_set.pixels[[q.source for q in batch]])
        targets = self.normalizer(self.train_set.pixels[[q.target for q in batch]])
        with self.autocast():
            queries, target_features = self.model.query_and_target(sources, [q.text for q in batch], targets)
        loss = self.loss_fn(queries.float(), target_features.float())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at iteration {iteration}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.item())

    def evaluate(self, iteration: int) -> dict:
        with self.autocast():
            train_recall = evaluate(self.model, self.train_set, self.normalizer, self.train_eval_queries)
            test_recall = evaluate(self.model, self.test_set, self.normalizer)
        for name, recalls in (("train", train_recall), ("test", test_recall)):
            for key, value in recalls.items():
                self.writer.add_scalar(f"{name}/{key}", value, iteration)
        record = {"iteration": iteration, "train": train_recall, "test": test_recall}
        self.history.append(record)
        return record

    def run(self) -> dict:
        self.model.train()
        started, losses = time.monotonic(), []
        bar = tqdm(range(1, self.options.num_iters + 1), unit="it", desc=self.model.config.model)
        for iteration in bar:
            losses.append(self.step(iteration))
            if iteration % 50 == 0:
                mean_loss = sum(losses[-50:]) / len(losses[-50:])
                self.writer.add_scalar("train/loss", mean_loss, iteration)
                bar.set_postfix(loss=f"{mean_loss:.3f}")
            if iteration % self.options.eval_every == 0 and iteration < self.options.num_iters:
                bar.write(_summary(self.evaluate(iteration)))
                self.save(iteration, time.monotonic() - started)
        final = self.evaluate(self.options.num_iters)
        wall = time.monotonic() - started
        self.save(self.options.num_iters, wall)
        self.writer.close()
        result = {**final, "wall_time_s": round(wall, 1), "first_losses": losses[:50], "last_losses": losses[-50:],
                  "finished_at": datetime.now(UTC).isoformat(timespec="seconds")}
        (self.run_dir / "results.json").write_text(json.dumps(
            {**result, "history": self.history, "options": vars(self.options)}, indent=2))
        return result

    def save(self, iteration: int, wall_s: float) -> Path:
        return save_checkpoint(self.run_dir / "checkpoint.pt", self.model, iteration=iteration,
                               wall_time_s=round(wall_s, 1), history=self.history)


def _summary(record: dict) -> str:
    test = "  ".join(f"{k} {v:.1f}" for k, v in record["test"].items())
    return f"iter {record['iteration']}: test {test} | train R@1 {record['train']['R@1']:.1f}"
