"""Training and scoring composers over frozen CLIP features (tirg.combiner), on SplitFeatures.

The loss is a classification over the whole training gallery (as CLIP4Cir's, with every training image as
a negative rather than the batch's): each composed query should be nearer the images of its target's label
than every other image. The features are fixed, so a step costs one [batch x gallery] product.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tirg.clip_features import SplitFeatures
from tirg.combiner import ClipCombiner, CombinerConfig, weighted_sum
from tirg.evaluate import RECALL_AT, recall_at_k

Composer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.inference_mode()
def compose_queries(composer: Composer, split: SplitFeatures, batch_size: int = 4096) -> torch.Tensor:
    parts = [composer(split.images[split.sources[i:i + batch_size]], split.texts[split.text_index[i:i + batch_size]])
             for i in range(0, len(split.sources), batch_size)]
    return torch.cat(parts).float()


def score(composer: Composer, split: SplitFeatures, ks: Sequence[int] = RECALL_AT) -> dict[str, float]:
    """Recall@K with the paper's protocol (tirg.evaluate): the query's own image left out."""
    return recall_at_k(compose_queries(composer, split), split.images, split.sources, split.target_labels,
                       split.labels, ks=ks)


def sweep_sum_weight(split: SplitFeatures, weights: Sequence[float]) -> dict[float, dict[str, float]]:
    """Recall of the zero-shot weighted sum at each text weight."""
    return {weight: score(sum_composer(weight), split) for weight in weights}


def sum_composer(text_weight: float) -> Composer:
    return lambda image, text: weighted_sum(image, text, text_weight)


@dataclass
class CombinerOptions:
    steps: int = 3000
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    seed: int = 0
    eval_every: int = 1000


def gallery_loss(model: ClipCombiner, split: SplitFeatures, batch: np.ndarray) -> torch.Tensor:
    """-log P(target label | composed query) over the whole gallery, the query's own image left out."""
    composed = model(split.images[split.sources[batch]], split.texts[split.text_index[batch]])
    logits = model.logit_scale.exp() * composed @ split.images.t()
    rows = torch.arange(len(batch))
    logits[rows, torch.as_tensor(split.sources[batch])] = -float("inf")
    positive = torch.as_tensor(split.labels)[None, :] == torch.as_tensor(split.target_labels[batch])[:, None]
    on_target = torch.logsumexp(logits.masked_fill(~positive, -float("inf")), dim=1)
    return (torch.logsumexp(logits, dim=1) - on_target).mean()


def train_combiner(train: SplitFeatures, config: CombinerConfig, options: CombinerOptions,
                   evaluate: Callable[[ClipCombiner], dict[str, float]] | None = None,
                   log: Callable[[str], object] = print) -> tuple[ClipCombiner, list[dict]]:
    """AdamW with cosine decay; `evaluate` (e.g. on a held-out split) runs every `eval_every` steps and at
    the end. Returns the model in eval mode and the history of evaluations."""
    torch.manual_seed(options.seed)
    rng = random.Random(options.seed)
    model = ClipCombiner(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(options.steps, 1))
    history: list[dict] = []
    started = time.perf_counter()
    count = len(train.sources)
    for step in range(1, options.steps + 1):
        model.train()
        batch = np.array(rng.sample(range(count), min(options.batch_size, count)))
        loss = gallery_loss(model, train, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if evaluate and (step % options.eval_every == 0 or step == options.steps):
            model.eval()
            entry = {"step": step, "loss": float(loss.detach()), "wall_s": round(time.perf_counter() - started, 1),
                     **evaluate(model)}
            history.append(entry)
            log(" ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()))
    return model.eval(), history
