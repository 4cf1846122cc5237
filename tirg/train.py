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
from tirg.evaluate import evaluate, image_features
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
    freeze_image_encoder: bool = False  # train the text side and composition over cached image features


def make_optimizer(model: ComposeModel, options: TrainOptions) -> torch.optim.Optimizer:
    trained = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(trained, lr=options.learning_rate, momentum=0.9, weight_decay=options.weight_decay)


def freeze_image_encoder(model: ComposeModel) -> None:
    """Keep the image encoder as it is: its features are then computed once per image, and a step costs
    only the text encoder and the composition, which makes large batches (many negatives) affordable on
    a CPU."""
    for parameter in model.image_encoder.parameters():
        parameter.requires_grad_(False)


def _decayed_lr(options: TrainOptions, iteration: int) -> float:
    return options.learning_rate * 0.1 ** (iteration // options.learning_rate_decay_frequency)


class Trainer:
    """`resume`: the `training` record of a checkpoint this trainer wrote; the run then continues
    exactly where it stopped (same optimizer momentum, learning-rate schedule, batches and dropout)."""

    def __init__(self, model: ComposeModel, train_set: CSSDataset, test_set: CSSDataset,
                 options: TrainOptions, run_dir: Path, device: torch.device, resume: dict | None = None):
        self.model, self.train_set, self.test_set = model, train_set, test_set
        self.options, self.run_dir, self.device = options, run_dir, device
        self.normalizer = ImageNormalizer(model.config.image_mean, model.config.image_std, device)
        self.features: dict[str, torch.Tensor] = {}
        if options.freeze_image_encoder:
            freeze_image_encoder(model)
            self.features = {"train": image_features(model, train_set, self.normalizer),
                             "test": image_features(model, test_set, self.normalizer)}
        self.optimizer = make_optimizer(model, options)
        self.loss_fn = LOSSES[options.loss]
        self.rng = random.Random(options.seed)
        eval_rng = random.Random(options.seed + 1)
        self.train_eval_queries = eval_rng.sample(train_set.queries,
                                                  min(options.train_eval_queries, len(train_set.queries)))
        self.writer = SummaryWriter(log_dir=str(run_dir))
        self.history: list[dict] = []
        self.losses: list[float] = []
        self.done, self.wall_before_s = 0, 0.0  # iterations and seconds of earlier sittings
        if resume is not None:
            self._restore(resume)

    def training_state(self, iteration: int, wall_s: float) -> dict:
        return {"iteration": iteration, "wall_time_s": wall_s, "optimizer": self.optimizer.state_dict(),
                "python_rng": self.rng.getstate(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
                "losses": list(self.losses), "history": list(self.history), "options": vars(self.options)}

    def _restore(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.setstate(_as_rng_state(state["python_rng"]))
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.done, self.wall_before_s = int(state["iteration"]), float(state["wall_time_s"])
        self.losses, self.history = list(state["losses"]), list(state["history"])

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.options.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def step(self, iteration: int) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = _decayed_lr(self.options, iteration)
        batch = self.train_set.sample_queries(self.options.batch_size, self.rng)
        sources, targets, texts = [q.source for q in batch], [q.target for q in batch], [q.text for q in batch]
        with self.autocast():
            if self.features:
                cached = self.features["train"]
                queries, target_features = self.model.query_and_target_of_features(cached[sources], texts,
                                                                                   cached[targets])
            else:
                queries, target_features = self.model.query_and_target(
                    self.normalizer(self.train_set.pixels[sources]), texts,
                    self.normalizer(self.train_set.pixels[targets]))
        loss = self.loss_fn(queries.float(), target_features.float())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at iteration {iteration}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.item())

    def evaluate(self, iteration: int) -> dict:
        with self.autocast():
            train_recall = evaluate(self.model, self.train_set, self.normalizer, self.train_eval_queries,
                                    features=self.features.get("train"))
            test_recall = evaluate(self.model, self.test_set, self.normalizer,
                                   features=self.features.get("test"))
        for name, recalls in (("train", train_recall), ("test", test_recall)):
            for key, value in recalls.items():
                self.writer.add_scalar(f"{name}/{key}", value, iteration)
        record = {"iteration": iteration, "train": train_recall, "test": test_recall}
        self.history.append(record)
        return record

    def run(self) -> dict:
        self.model.train()
        started = time.monotonic()

        def elapsed() -> float:
            return self.wall_before_s + time.monotonic() - started
        bar = tqdm(range(self.done + 1, self.options.num_iters + 1), unit="it", desc=self.model.config.model,
                   initial=self.done, total=self.options.num_iters)
        for iteration in bar:
            self.losses.append(self.step(iteration))
            if iteration % 50 == 0:
                mean_loss = sum(self.losses[-50:]) / len(self.losses[-50:])
                self.writer.add_scalar("train/loss", mean_loss, iteration)
                bar.set_postfix(loss=f"{mean_loss:.3f}")
            if iteration % self.options.eval_every == 0 and iteration < self.options.num_iters:
                bar.write(_summary(self.evaluate(iteration)))
                self.save(iteration, elapsed())
        final = self.evaluate(self.options.num_iters)
        wall = elapsed()
        self.save(self.options.num_iters, wall)
        self.writer.close()
        result = {**final, "wall_time_s": round(wall, 1), "first_losses": self.losses[:50],
                  "last_losses": self.losses[-50:],
                  "finished_at": datetime.now(UTC).isoformat(timespec="seconds")}
        (self.run_dir / "results.json").write_text(json.dumps(
            {**result, "history": self.history, "options": vars(self.options)}, indent=2))
        return result

    def save(self, iteration: int, wall_s: float) -> Path:
        return save_checkpoint(self.run_dir / "checkpoint.pt", self.model, iteration=iteration,
                               wall_time_s=round(wall_s, 1), history=self.history,
                               training=self.training_state(iteration, wall_s))


def _as_rng_state(saved) -> tuple:
    """random.Random's state is nested tuples; a checkpoint round trip may give lists."""
    version, internal, gauss = saved
    return int(version), tuple(int(x) for x in internal), gauss


def _summary(record: dict) -> str:
    test = "  ".join(f"{k} {v:.1f}" for k, v in record["test"].items())
    return f"iter {record['iteration']}: test {test} | train R@1 {record['train']['R@1']:.1f}"
