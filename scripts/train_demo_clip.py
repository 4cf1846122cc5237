"""Train the offline demo's small CLIP on the CSS captions and Fashion-MNIST, with a contrastive loss.

    python scripts/train_demo_clip.py --dataset_path CSSDataset --out models/css-clip.pt [--epochs 12]
                                      [--fashion_per_epoch 17000] [--init models/css-clip.pt]

No CLIP weights can be downloaded here, so the demo ships its own: the `css-clip` architecture
(webserver/encoders/model_configs/css-clip.json, ~3.8M parameters), trained on the train split's scenes
and captions ("a large red sphere at top-left, ...") and, where Debian's dataset-fashion-mnist is
installed, on Fashion-MNIST's train split with captions made from its class names (scripts/_clip_data.py),
saved in fp16. Evaluation, on the fp16 weights as the server loads them:
- scenes: text -> image retrieval on the held-out test split: each test caption ranks all test images,
  and a hit at K is any of the top K showing the same scene (same label);
- fashion: each class's query ("a dress") ranks the 10,000 Fashion-MNIST test images: precision@10 per
  class, and the top-1 accuracy of classifying every test image by the nearest class query.
A model card (`<out>.md`) records the data, command, iterations, wall time and these figures. Serve it
with `CLIP_MODEL=css-clip CLIP_PRETRAINED=models/css-clip.pt`.
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
from _clip_data import CaptionedImages, class_query, epoch_order, fashion_items, grouped_clip_loss, join, scene_items
from _samples import LABELS
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
    parser.add_argument("--fashion_per_epoch", type=int, default=17000,
                        help="Fashion-MNIST train images drawn afresh each epoch (0: scenes only)")
    parser.add_argument("--init", type=Path, help="start from these weights (a checkpoint this script wrote)")
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


def train(args, model, tokenizer, parts: list[CaptionedImages], normalize) -> tuple[int, list[float]]:
    items = join(parts)
    per_epoch = [len(parts[0])] + [args.fashion_per_epoch] * (len(parts) - 1)
    texts = sorted({c for captions in items.captions for c in captions})
    token_rows = dict(zip(texts, tokenizer(texts), strict=True))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    steps_per_epoch = sum(min(n, len(p)) for n, p in zip(per_epoch, parts, strict=True)) // args.batch_size
    total, step, losses = steps_per_epoch * args.epochs, 0, []
    rng = random.Random(args.seed)
    model.train()
    with tqdm(total=total, unit="step", desc=args.model) as bar:
        for _ in range(args.epochs):
            order = epoch_order([len(p) for p in parts], per_epoch, rng)
            for start in range(0, steps_per_epoch * args.batch_size, args.batch_size):
                batch = order[start:start + args.batch_size]
                tokens = torch.stack([token_rows[rng.choice(items.captions[i])] for i in batch])
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(args, step, total)
                with autocast(args):
                    image_features, text_features, logit_scale = model(normalize(items.images[batch]), tokens)
                loss = grouped_clip_loss(image_features.float(), text_features.float(), logit_scale.float(),
                                         torch.from_numpy(items.groups[batch]))
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
def encode(args, model, tokenizer, images: torch.Tensor, texts: list[str], normalize):
    model.eval()
    with autocast(args):
        image_features = torch.cat([model.encode_image(normalize(images[i:i + 512]))
                                    for i in range(0, len(images), 512)])
        tokens = tokenizer(texts)
        text_features = torch.cat([model.encode_text(tokens[i:i + 512]) for i in range(0, len(tokens), 512)])
    return F.normalize(image_features.float(), dim=1), F.normalize(text_features.float(), dim=1)


def text_to_image_recall(args, model, tokenizer, dataset, normalize) -> dict[str, float]:
    from tirg.evaluate import recall_at_k

    images, texts = encode(args, model, tokenizer, dataset.pixels, [str(c) for c in dataset.captions], normalize)
    labels = np.asarray(dataset.labels)
    recall = recall_at_k(texts, images, None, labels, labels, ks=RECALL_AT)  # a hit: the same scene
    return {key: round(value, 2) for key, value in recall.items()}


def fashion_precision(args, model, tokenizer, test: CaptionedImages, normalize) -> dict:
    """Per class: of the 10 test images nearest its query ("a dress"), how many are that class; and the
    accuracy of labelling each test image with its nearest class query."""
    images, queries = encode(args, model, tokenizer, test.images, [class_query(n) for n in LABELS], normalize)
    classes = torch.from_numpy(-1 - test.groups)
    similarity = queries @ images.t()
    top10 = classes[similarity.topk(10, dim=1).indices]
    per_class = {name: int((top10[k] == k).sum()) for k, name in enumerate(LABELS)}
    accuracy = float((similarity.argmax(dim=0) == classes).float().mean()) * 100
    return {"precision_at_10": per_class, "classes_with_8_of_10": sum(v >= 8 for v in per_class.values()),
            "top1_accuracy": round(accuracy, 2), "test_images": len(test)}


def round_to_fp16(model) -> None:
    """The weights as they will be shipped (fp16) and served (computed in fp32), so that the card's
    figures are the server's."""
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())


def save_fp16(model, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state}, path)


def write_card(args, path: Path, result: dict) -> Path:
    card = path.with_suffix(".md")
    command = "python scripts/train_demo_clip.py " + " ".join(sys.argv[1:])
    start = f"continued from `{args.init}`" if args.init else "trained from scratch"
    lines = [
        f"# {args.model}: the offline demo's CLIP\n",
        f"- Architecture: `{args.model}` (`webserver/encoders/model_configs/{args.model}.json`), "
        f"{result['parameters'] / 1e6:.1f}M parameters, {start}; weights in fp16 ({path.stat().st_size / 1e6:.1f} MB).",
        f"- Data: the generated CSS-style set (`scripts/make_css.py`), train split: {result['train_images']} "
        "images with one caption each" + (
            f"; Fashion-MNIST's train split ({result['fashion']['train_images']} images, Debian's "
            f"dataset-fashion-mnist), {args.fashion_per_epoch} drawn afresh each epoch, captions from the class "
            "names in several phrasings (`scripts/_clip_data.py`)." if "fashion" in result else "."),
        f"- Command: `{command}`",
        f"- Training: {result['steps']} steps ({args.epochs} epochs, batch {args.batch_size}), open_clip's "
        "contrastive loss with the targets spread over each item's group (same caption, same class), AdamW lr "
        f"{args.learning_rate} (cosine, {args.warmup} warm-up steps), {args.chosen.precision}; "
        f"{result['wall_time_s'] / 60:.1f} min on {args.chosen.hardware} ({result['threads']} torch threads).",
        "- Evaluated on these fp16 weights computed in fp32, as the server loads them.",
        f"- Scenes, text -> image on the held-out test split ({result['test_images']} captions against "
        f"{result['test_images']} images, a hit is the same scene): "
        + ", ".join(f"{k} {v}" for k, v in result["test"].items()) + ".",
    ]
    if "fashion" in result:
        fashion = result["fashion"]
        lines += [
            f"- Fashion-MNIST, text -> image on its test split ({fashion['test_images']} images, never trained "
            f"on): of the 10 images nearest each class's query, how many are that class "
            f"({fashion['classes_with_8_of_10']} of 10 classes at 8 or more); labelling every test image by "
            f"its nearest class query is right for {fashion['top1_accuracy']}%.\n",
            "| query | " + " | ".join(f"\"{class_query(n)}\"" for n in LABELS) + " |",
            "|---|" + "---|" * len(LABELS),
            "| precision@10 | " + " | ".join(str(fashion["precision_at_10"][n]) for n in LABELS) + " |\n",
        ]
    lines.append(f"- Serve: `CLIP_MODEL={args.model} CLIP_PRETRAINED={path}`.")
    card.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps(result, indent=2))
    return card


def load_parts(args, image_size: int) -> tuple[list[CaptionedImages], CaptionedImages | None, object]:
    """The training parts (scenes first, then Fashion-MNIST where installed and asked for), Fashion-MNIST's
    test split, and the scenes' test split."""
    from tirg.data import CSSDataset

    train_set = CSSDataset(args.dataset_path, "train", image_size)
    test_set = CSSDataset(args.dataset_path, "test", image_size)
    if train_set.captions is None or test_set.captions is None:
        raise SystemExit(f"error: {args.dataset_path} has no captions; regenerate it with scripts/make_css.py")
    parts, fashion_test = [scene_items(train_set)], None
    if args.fashion_per_epoch:
        fashion_train = fashion_items("train", image_size)
        if fashion_train is None:
            print("warning: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist): "
                  "training on the scenes only", file=sys.stderr)
        else:
            parts.append(fashion_train)
            fashion_test = fashion_items("test", image_size)
    return parts, fashion_test, test_set


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import open_clip

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
    if args.init:
        model.load_state_dict({k: v.float() for k, v in torch.load(args.init)["state_dict"].items()})
    tokenizer = open_clip.get_tokenizer(args.model)
    image_size = model.visual.image_size
    image_size = image_size[0] if isinstance(image_size, (tuple, list)) else image_size
    parts, fashion_test, scene_test = load_parts(args, image_size)
    normalize = Normalizer(model)
    started = time.monotonic()
    steps, losses = train(args, model, tokenizer, parts, normalize)
    wall = time.monotonic() - started
    round_to_fp16(model)
    result = {"test": text_to_image_recall(args, model, tokenizer, scene_test, normalize), "steps": steps,
              "wall_time_s": round(wall, 1), "first_loss": losses[0], "last_loss": float(np.mean(losses[-20:])),
              "parameters": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads(),
              "precision": args.chosen.precision, "hardware": args.chosen.hardware,
              "train_images": len(parts[0]), "test_images": len(scene_test)}
    if fashion_test is not None:
        result["fashion"] = {"train_images": len(parts[1]),
                             **fashion_precision(args, model, tokenizer, fashion_test, normalize)}
    save_fp16(model, args.out)
    card = write_card(args, args.out, result)
    print(json.dumps({"scenes": result["test"], "fashion": result.get("fashion")}), f"-> {args.out} ({card})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
