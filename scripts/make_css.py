"""Generate a CSS-style data set (scenes, modification texts, labels, captions, images).

    python scripts/make_css.py --out CSSDataset [--renderer 3d|2d] [--train-images 17000]
                               [--test-images 17000] [--image-size 64] [--seed 0] [--workers 2]
                               [--children 15]

The output is laid out like the original CSSDataset/, so `python -m tirg --dataset=css3d
--dataset_path=CSSDataset` trains on it (and on the original files, for users who have them).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _bootstrap  # noqa: F401
from tqdm import tqdm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("CSSDataset"))
    parser.add_argument("--renderer", choices=["3d", "2d"], default="3d")
    parser.add_argument("--train-images", type=int, default=17000)
    parser.add_argument("--test-images", type=int, default=17000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--children", type=int, help="modifications per scene (default: the generator's, 15); "
                                                      "fewer lets an image-only model find targets")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    from tirg.scenes.generate import CHILDREN_PER_SCENE, generate

    with tqdm(total=args.train_images + args.test_images, unit="img", desc=f"rendering {args.renderer}") as bar:
        data = generate(args.out, train_images=args.train_images, test_images=args.test_images,
                        renderer=args.renderer, image_size=args.image_size, seed=args.seed,
                        children_per_scene=args.children or CHILDREN_PER_SCENE, workers=args.workers,
                        progress=bar.update)
    for split in ("train", "test"):
        queries = sum(len(mod["from"]) for mod in data[split]["mods"])
        print(f"{split}: {len(data[split]['objects_img'])} images, {len(set(data[split]['labels']))} distinct "
              f"scenes, {len(data[split]['mods'])} modification texts, {queries} queries")
    print(f"held out of train: {', '.join(f'{c} {s}' for c, s in data['held_out'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
