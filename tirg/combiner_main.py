"""`python -m tirg --model=clip_combiner`: compose over a frozen CLIP, trained and scored on a split's
triplets, beside the zero-shot weighted sum and the image-only and text-only floors.

    python -m tirg --model=clip_combiner --clip_model css-clip --clip_pretrained models/css-clip.pt \\
        --clip_config webserver/encoders/model_configs/css-clip.json --dataset_path ./CSSDataset \\
        --num_iters 3000 --export models

Writes RUN_DIR/combiner.pt and RUN_DIR/results.json (and DIR/combiner.pt with --export DIR). The weighted
sum's text weight is chosen on the training split; every figure reported is on the test split.
"""
from __future__ import annotations

import json
import shutil
import time
from datetime import datetime
from pathlib import Path

import torch
from tqdm import tqdm

from tirg.clip_features import SplitFeatures, load_clip, split_features
from tirg.combiner import CombinerConfig, save_combiner
from tirg.combiner_train import CombinerOptions, score, sum_composer, sweep_sum_weight, train_combiner

SUM_WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))


def featurize(clip, dataset, split: str) -> SplitFeatures:
    with tqdm(total=len(dataset), unit="img", desc=f"CLIP features, {split}") as bar:
        return split_features(clip, dataset, progress=bar.update)


def run(args, open_split, device: torch.device) -> int:
    """`open_split(split)`: the data set of a split (images are read from their files)."""
    if not args.clip_pretrained:
        raise SystemExit("error: --model=clip_combiner needs --clip_model and --clip_pretrained (and --clip_config "
                         "for an architecture open_clip does not ship)")
    started = time.perf_counter()
    clip = load_clip(args.clip_model, args.clip_pretrained, args.clip_config, device)
    train, test = featurize(clip, open_split("train"), "train"), featurize(clip, open_split("test"), "test")
    features_s = time.perf_counter() - started
    on_train = sweep_sum_weight(train, SUM_WEIGHTS)
    best_weight = max(SUM_WEIGHTS, key=lambda w: (on_train[w]["R@1"], -abs(w - 0.5)))
    results = {
        "clip": {"model": clip.name, "weights": clip.weights_id},
        "features_s": round(features_s, 1), "train_queries": len(train.sources), "test_queries": len(test.sources),
        "image_only": score(lambda i, t: i, test), "text_only": score(lambda i, t: t, test),
        "sum_weight_chosen_on_train": best_weight,
        "sum": score(sum_composer(best_weight), test),
        "sum_sweep_test": {str(w): r for w, r in sweep_sum_weight(test, SUM_WEIGHTS).items()},
        "sum_sweep_train_R@1": {str(w): r["R@1"] for w, r in on_train.items()},
    }
    print(f"zero-shot sum: text weight {best_weight} (best R@1 on train), test {results['sum']}")
    options = CombinerOptions(steps=args.num_iters, batch_size=args.batch_size, learning_rate=args.learning_rate,
                              weight_decay=args.weight_decay, seed=args.seed, eval_every=args.eval_every)
    config = CombinerConfig(dimension=train.images.shape[1], clip_model=clip.name,
                            clip_weights=clip.weights_id)
    trained_at = time.perf_counter()
    model, history = train_combiner(train, config, options, evaluate=lambda m: score(m, test, ks=(1, 5, 10)))
    results.update(combiner=score(model, test), history=history, options=vars(options),
                   train_s=round(time.perf_counter() - trained_at, 1))
    run_dir = Path(args.runs_dir) / (datetime.now().strftime("%b%d_%H-%M-%S") + (args.comment or "_clip_combiner"))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps(results, indent=1))
    path = save_combiner(run_dir / "combiner.pt", model, test=results["combiner"], sum=results["sum"],
                         sum_weight=best_weight, options=vars(options))
    print(json.dumps({"combiner": results["combiner"], "sum": results["sum"], "train_s": results["train_s"]}))
    if args.export:
        Path(args.export).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(args.export) / "combiner.pt")
        print(f"wrote {Path(args.export) / 'combiner.pt'}")
    return 0
