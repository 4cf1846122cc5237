"""Real embeddings for `bench_scale.py --vectors`: a CLIP's image vectors of the generated scenes (both
splits) and of Fashion-MNIST (train and test), shuffled with a fixed seed, as one .npy matrix.

    python scripts/embed_real_vectors.py --dataset_path CSSDataset --out /tmp/real_vectors.npy

The CLIP is the server's (CLIP_MODEL / CLIP_PRETRAINED; the demo's css-clip by default), encoding as the
server does (its preprocess, unit vectors). bench_scale takes the last --queries rows as queries, so the
shuffle mixes scenes and garments into both the collection and the queries.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import _bootstrap
import numpy as np
from _samples import fashion_mnist
from PIL import Image
from tqdm import tqdm

ROOT = _bootstrap.ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_path", type=Path, default=Path("CSSDataset"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("CLIP_MODEL", "css-clip")
    os.environ.setdefault("CLIP_PRETRAINED", str(ROOT / "models" / "css-clip.pt"))

    from config import Settings
    from webserver.services.container import load_encoder

    encoder = load_encoder(Settings())
    scenes = sorted((args.dataset_path / "images").glob("css_*.png"))
    garments = [pixels for split in ("train", "test") if (data := fashion_mnist(split)) for pixels in data[0]]
    images = [lambda path=path: Image.open(path) for path in scenes] + \
             [lambda pixels=pixels: Image.fromarray(pixels) for pixels in garments]
    vectors = np.empty((len(images), encoder.dimension), np.float32)
    with tqdm(total=len(images), unit="img", desc=f"{encoder.encoder_id}") as bar:
        for start in range(0, len(images), 256):
            batch = [load().convert("RGB") for load in images[start:start + 256]]
            vectors[start:start + len(batch)] = encoder.encode_images(batch)
            bar.update(len(batch))
    order = np.random.default_rng(args.seed).permutation(len(vectors))
    np.save(args.out, vectors[order])
    print(f"{len(scenes)} scenes + {len(garments)} Fashion-MNIST images -> {args.out} ({vectors.shape[1]}-d)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
