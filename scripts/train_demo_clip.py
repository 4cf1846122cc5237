"""Train the offline demo's small CLIP on the CSS captions, with open_clip's contrastive loss.

    python scripts/train_demo_clip.py --dataset_path CSSDataset --out models/css-clip.pt [--epochs 12]

No CLIP weights can be downloaded here, so the demo ships its own: the `css-clip` architecture
(webserver/encoders/model_configs/css-clip.json, ~3.8M parameters), trained from scratch on the train
split's images and captions ("a large red sphere at top-left, ..."), saved in fp16. Evaluation is
text -> image retrieval on the held-out test split: each test caption ranks all test images, and a hit
at K is any of the top K showing the same scene (same label). A model card (`<out>.md`) records the data,
command, iterations, wall time and the recall reached. Serve it with
`CLIP_MODEL=css-clip CLIP_PRETRAINED=models/css-clip.pt`.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import _bootstrap  # noqa: F401
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

RECALL_AT = (1, 5, 10)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_path", type=Path, default=Path("CSSDataset"))
    parser.add_argument("--model", default="css-clip")
    parser.add_argument("--out", type=Path, default=Path("models/css-clip.pt"))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--weight_decay", type=float, default=0.1)
    parser.add_argument("--warmup", type=int, default=200, help="warm-up steps of the cosine schedule")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="auto: bf16 autocast where the CPU computes bf16 natively (AVX-512 BF16, AMX), "
                             "else fp32; an explicit bf16 where it would be emulated runs fp32 with a warning")
    parser.add_argument("--cpu_class", default="auto", help="force a CPU class (tirg.hardware.CPU_CLASSES)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


class Normalizer:
    """uint8 [B, 3, H, W] -> the model's normalized floats, as its open_clip preprocess would give."""

    def __init__(self, model):
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        mean = getattr(model.visual, "image_mean", None) or OPENAI_DATASET_MEAN
        std = getattr(model.visual, "image_std", None) or OPENAI_DATASET_STD
        self.mean = torch.tensor(mean).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std).view(1, 3, 1, 1) * 255

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() - self.mean) / self.std


def learning_rate(args: argparse.Namespace, step: int, total: int) -> float:
    if step < args.warmup:
        return args.learning_rate * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, total - args.warmup)
    return 0.5 * args.learning_rate * (1 + math.cos(math.pi * progress))


def autocast(args: argparse.Namespace):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.chosen.precision == "bf16")


def train(args, model, tokenizer, dataset, normalize) -> tuple[int, list[float]]:
    from open_clip.loss import ClipLoss

    loss_fn = ClipLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    tokens = tokenizer([str(c) for c in dataset.captions])
    order = list(range(len(dataset)))
    steps_per_epoch = len(order) // args.batch_size
    total, step, losses = steps_per_epoch * args.epochs, 0, []
    rng = random.Random(args.seed)
    model.train()
    with tqdm(total=total, unit="step", desc=args.model) as bar:
        for _ in range(args.epochs):
            rng.shuffle(order)
            for start in range(0, steps_per_epoch * args.batch_size, args.batch_size):
                batch = order[start:start + args.batch_size]
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(args, step, total)
                with autocast(args):
                    image_features, text_features, logit_scale = model(normalize(dataset.images[batch]),
                                                                       tokens[batch])
                loss = loss_fn(image_features.float(), text_features.float(), logit_scale.float())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():  # as open_clip's trainer: keep the temperature in range
                    model.logit_scale.clamp_(0, math.log(100))
                losses.append(float(loss))
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    return step, losses


@torch.inference_mode()
def text_to_image_recall(args, model, tokenizer, dataset, normalize) -> dict[str, float]:
    from tirg.evaluate import recall_at_k

    model.eval()
    with autocast(args):
        images = torch.cat([model.encode_image(normalize(dataset.images[i:i + 512]))
                            for i in range(0, len(dataset), 512)])
        tokens = tokenizer([str(c) for c in dataset.captions])
        texts = torch.cat([model.encode_text(tokens[i:i + 512]) for i in range(0, len(tokens), 512)])
    images, texts = F.normalize(images.float(), dim=1), F.normalize(texts.float(), dim=1)
    labels = np.asarray(dataset.labels)
    recall = recall_at_k(texts, images, None, labels, labels, ks=RECALL_AT)  # a hit: the same scene
    return {key: round(value, 2) for key, value in recall.items()}


def save_fp16(model, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state}, path)


def write_card(args, path: Path, result: dict) -> Path:
    card = path.with_suffix(".md")
    command = "python scripts/train_demo_clip.py " + " ".join(sys.argv[1:])
    card.write_text(
        f"# {args.model}: the offline demo's CLIP\n\n"
        f"- Architecture: `{args.model}` (`webserver/encoders/model_configs/{args.model}.json`), "
        f"{result['parameters'] / 1e6:.1f}M parameters, trained from scratch; weights in fp16 "
        f"({path.stat().st_size / 1e6:.1f} MB).\n"
        f"- Data: the generated CSS-style set (`scripts/make_css.py`), train split: "
        f"{result['train_images']} images with one caption each.\n"
        f"- Command: `{command}`\n"
        f"- Training: {result['steps']} steps ({args.epochs} epochs, batch {args.batch_size}), open_clip's "
        f"ClipLoss, AdamW lr {args.learning_rate} (cosine, {args.warmup} warm-up steps), "
        f"{args.chosen.precision}; {result['wall_time_s'] / 60:.1f} min on {args.chosen.hardware}.\n"
        f"- Text -> image on the held-out test split ({result['test_images']} captions against "
        f"{result['test_images']} images, a hit is the same scene): "
        + ", ".join(f"{k} {v}" for k, v in result["test"].items()) + ".\n"
        f"- Serve: `CLIP_MODEL={args.model} CLIP_PRETRAINED={path}`.\n")
    path.with_suffix(".json").write_text(json.dumps(result, indent=2))
    return card


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import open_clip

    from tirg.data import CSSDataset
    from tirg.hardware import choose_precision
    from webserver.encoders.clip import register_model_configs

    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.chosen = choose_precision(args.precision, "cpu", args.cpu_class)
    if args.chosen.fell_back:
        print(f"warning: --precision bf16: {args.chosen.reason}", file=sys.stderr)
    register_model_configs()
    model = open_clip.create_model(args.model)
    tokenizer = open_clip.get_tokenizer(args.model)
    image_size = model.visual.image_size
    image_size = image_size[0] if isinstance(image_size, (tuple, list)) else image_size
    train_set = CSSDataset(args.dataset_path, "train", image_size)
    test_set = CSSDataset(args.dataset_path, "test", image_size)
    if train_set.captions is None or test_set.captions is None:
        print(f"error: {args.dataset_path} has no captions; regenerate it with scripts/make_css.py", file=sys.stderr)
        return 2
    normalize = Normalizer(model)
    started = time.monotonic()
    steps, losses = train(args, model, tokenizer, train_set, normalize)
    wall = time.monotonic() - started
    result = {"test": text_to_image_recall(args, model, tokenizer, test_set, normalize), "steps": steps,
              "wall_time_s": round(wall, 1), "first_loss": losses[0], "last_loss": float(np.mean(losses[-20:])),
              "parameters": sum(p.numel() for p in model.parameters()),
              "precision": args.chosen.precision, "hardware": args.chosen.hardware,
              "train_images": len(train_set), "test_images": len(test_set)}
    save_fp16(model, args.out)
    card = write_card(args, args.out, result)
    print(json.dumps(result["test"]), f"-> {args.out} ({card})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
