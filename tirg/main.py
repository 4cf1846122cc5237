"""Train and evaluate TIRG on CSS, with the reference's command line.

    python -m tirg --dataset=css3d --dataset_path=./CSSDataset --num_iters=160000 \\
        --model=tirg --loss=soft_triplet --comment=css3d_tirg

Logs (tensorboard), the checkpoint and results.json go to ./runs/<timestamp><comment>.
`--export DIR` writes DIR/img.npy (test gallery vectors, row i = image i), DIR/images/ and
DIR/tirg.pt for the server; with `--checkpoint FILE --num_iters 0` it exports a trained model.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from datetime import datetime
from pathlib import Path

if __package__ in (None, ""):  # `python tirg/main.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from tirg.hardware import CPU_CLASSES, PRECISIONS
    from tirg.models import MODEL_NAMES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="css3d", choices=["css3d", "triplets"],
                        help="triplets: a folder of images plus triplets.jsonl (see tirg/triplets.py)")
    parser.add_argument("--dataset_path", default="./CSSDataset")
    parser.add_argument("--num_iters", type=int, default=160000)
    parser.add_argument("--model", default="tirg", choices=MODEL_NAMES + ("clip_combiner",),
                        help="clip_combiner: a composer over a frozen CLIP's features (--clip_*)")
    parser.add_argument("--loss", default="soft_triplet", choices=["soft_triplet", "batch_based_classification"])
    parser.add_argument("--comment", default="")
    parser.add_argument("--batch_size", type=int, help="default 32 (clip_combiner: 256)")
    parser.add_argument("--learning_rate", type=float, help="default 0.01 (clip_combiner: 0.001)")
    parser.add_argument("--weight_decay", type=float, help="default 1e-6 (clip_combiner: 0.05)")
    parser.add_argument("--learning_rate_decay_frequency", type=int, default=9_999_999)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--renderer", default="files", choices=["files", "2d", "3d"],
                        help="files: the PNGs in images/; 2d/3d: draw each scene from its objects")
    parser.add_argument("--backbone", default="resnet18", choices=["resnet18", "efficientnet_lite0"])
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--embed_dim", type=int, default=512)
    parser.add_argument("--eval_every", type=int, default=2000)
    parser.add_argument("--train_eval_queries", type=int, default=2000,
                        help="training queries (a fixed sample) scored at each evaluation")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="bf16: train and evaluate under bf16 autocast (weights stay fp32) where the "
                             "hardware computes bf16 natively, else fp32 with a warning; auto: bf16 only there")
    parser.add_argument("--cpu_class", default="auto", choices=("auto",) + CPU_CLASSES,
                        help="treat the CPU as this class when choosing the precision (auto: detect)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--runs_dir", default="./runs")
    parser.add_argument("--checkpoint", help="start from this checkpoint's weights (config and vocabulary from "
                                             "it) with a fresh optimizer and schedule")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue this run exactly (optimizer, schedule, batches, RNG) up to --num_iters "
                             "in all, in the same folder; the other training options are the run's own")
    parser.add_argument("--freeze_image_encoder", action="store_true",
                        help="keep the image encoder (of --checkpoint) as it is and train the text encoder and "
                             "the composition over its features, computed once: a step no longer runs the CNN, "
                             "so large batches are affordable on a CPU")
    parser.add_argument("--export", help="write img.npy, images/ and tirg.pt here after training "
                                         "(clip_combiner: combiner.pt)")
    parser.add_argument("--clip_model", default="ViT-B-32", help="clip_combiner: the open_clip architecture")
    parser.add_argument("--clip_pretrained", help="clip_combiner: its weights, a checkpoint file or a tag")
    parser.add_argument("--clip_config", help="clip_combiner: the architecture's JSON, where open_clip lacks it")
    args = parser.parse_args(argv)
    combiner = args.model == "clip_combiner"
    args.batch_size = args.batch_size or (256 if combiner else 32)
    args.learning_rate = args.learning_rate or (1e-3 if combiner else 1e-2)
    if args.weight_decay is None:
        args.weight_decay = 0.05 if combiner else 1e-6
    return args


def open_split(args, split: str, load_images: bool):
    from tirg.data import CSSDataset
    from tirg.triplets import TripletDataset

    if args.dataset == "triplets":
        if args.renderer != "files":
            raise SystemExit("error: --dataset=triplets reads its images from files (--renderer=files)")
        return TripletDataset(args.dataset_path, split, args.image_size, load_images=load_images)
    return CSSDataset(args.dataset_path, split, args.image_size, load_images=load_images)


def load_split(args, split: str):
    dataset = open_split(args, split, load_images=args.renderer == "files")
    if args.renderer != "files":
        dataset.images = render_split(dataset, args.renderer, args.image_size)
    return dataset


def render_split(dataset, renderer: str, size: int) -> torch.Tensor:
    from tirg.scenes.render import RENDERERS
    from tirg.scenes.scene import Scene, SceneObject

    draw = RENDERERS[renderer]
    pixels = [np.asarray(draw(Scene(SceneObject.from_record(r) for r in objects), size, i))
              for i, objects in enumerate(dataset.objects)]
    return torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()


def build_model(args, train_set):
    from tirg.checkpoint import load_model
    from tirg.models import TirgConfig, create_model
    from tirg.text import Vocabulary

    if args.resume:
        return load_model(Path(args.resume) / "checkpoint.pt")
    if args.checkpoint:
        return load_model(args.checkpoint)
    config = TirgConfig(model=args.model, backbone=args.backbone, embed_dim=args.embed_dim,
                        image_size=args.image_size)
    return create_model(config, Vocabulary.build(train_set.texts()))


def export(model, test_set, out: Path, device) -> None:
    from tirg.checkpoint import save_checkpoint
    from tirg.data import ImageNormalizer
    from tirg.evaluate import gallery_features

    out.mkdir(parents=True, exist_ok=True)
    normalizer = ImageNormalizer(model.config.image_mean, model.config.image_std, device)
    np.save(out / "img.npy", gallery_features(model.eval(), test_set, normalizer).cpu().numpy())
    (out / "images").mkdir(exist_ok=True)
    for i in range(len(test_set)):
        shutil.copyfile(test_set.image_path(i), out / "images" / f"{i:06d}.png")
    if test_set.captions is not None:
        captions = {f"{i:06d}.png": str(caption) for i, caption in enumerate(test_set.captions)}
        (out / "captions.json").write_text(json.dumps(captions, indent=0))
    save_checkpoint(out / "tirg.pt", model)
    print(f"exported {len(test_set)} gallery vectors, images and tirg.pt to {out}")


def resume_state(args) -> dict | None:
    """The saved training record of --resume RUN_DIR; the run's own options replace the command line's
    (all but --num_iters, the new total, and --dataset_path), and its image size is the model's."""
    if not args.resume:
        return None
    from tirg.checkpoint import read_checkpoint

    saved = read_checkpoint(Path(args.resume) / "checkpoint.pt")
    if "training" not in saved:
        raise SystemExit(f"error: {args.resume}/checkpoint.pt holds no training state (written before "
                         "--resume existed); continue it with --checkpoint instead (fresh optimizer)")
    state = saved["training"]
    if args.num_iters <= state["iteration"]:
        raise SystemExit(f"error: the run is at iteration {state['iteration']}; give --num_iters above it")
    options = state["options"]
    for name in ("batch_size", "learning_rate", "weight_decay", "learning_rate_decay_frequency", "loss",
                 "eval_every", "train_eval_queries", "seed"):
        setattr(args, name, options[name])
    args.freeze_image_encoder = options.get("freeze_image_encoder", False)
    args.precision = options.get("precision_requested") or options["precision"]
    args.started_from = options.get("started_from")
    args.image_size = saved["config"]["image_size"]
    return state


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from tirg.hardware import choose_precision, pick_device
    from tirg.train import Trainer, TrainOptions

    if args.model == "clip_combiner":
        from tirg.combiner_main import run

        return run(args, lambda split: open_split(args, split, load_images=False), pick_device(args.device))
    resume = resume_state(args)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    precision = choose_precision(args.precision, device, args.cpu_class)
    if precision.fell_back:
        print(f"warning: --precision bf16: {precision.reason}", file=sys.stderr)
    train_set, test_set = load_split(args, "train"), load_split(args, "test")
    model = build_model(args, train_set).to(device)
    if args.freeze_image_encoder and not model.composes_pooled_features:
        raise SystemExit(f"error: --freeze_image_encoder: model {model.config.model!r} composes the image "
                         "encoder's feature map, not the pooled features that can be computed once")
    run_dir = Path(args.resume) if args.resume else \
        Path(args.runs_dir) / (datetime.now().strftime("%b%d_%H-%M-%S") + args.comment)
    print(f"{model.config.model}: {len(train_set)} train / {len(test_set)} test images, {len(test_set.queries)} "
          f"test queries, vocabulary {len(model.vocabulary)}, {precision.hardware}, {precision.precision}; "
          f"logs in {run_dir}" + (f", resuming at iteration {resume['iteration']}" if resume else ""))
    started_from = getattr(args, "started_from", None) or (str(args.checkpoint) if args.checkpoint else None)
    options = TrainOptions(num_iters=args.num_iters, batch_size=args.batch_size, learning_rate=args.learning_rate,
                           weight_decay=args.weight_decay, loss=args.loss, eval_every=args.eval_every,
                           train_eval_queries=args.train_eval_queries,
                           precision=precision.precision, precision_requested=args.precision,
                           hardware=precision.hardware,
                           learning_rate_decay_frequency=args.learning_rate_decay_frequency, seed=args.seed,
                           started_from=started_from, freeze_image_encoder=args.freeze_image_encoder)
    result = Trainer(model, train_set, test_set, options, run_dir, device, resume=resume).run()
    print(json.dumps({"test": result["test"], "train": result["train"], "wall_time_s": result["wall_time_s"]}))
    if args.export:
        export(model, test_set, Path(args.export), device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
