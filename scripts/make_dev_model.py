"""Write a randomly initialised small open_clip model to a local file, to run the server offline.

    python scripts/make_dev_model.py [--model tiny-clip] [--out data/models/tiny-clip-random.pt]

Random weights exercise every part of the server (upload, dedup, image-to-image on identical images,
filters), but text search with them is meaningless. Use real CLIP (CLIP_PRETRAINED=openai, needs a
network once) or a trained checkpoint for real results.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _bootstrap  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-clip")
    parser.add_argument("--out", type=Path, default=Path("data/models/tiny-clip-random.pt"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from webserver.encoders.clip import save_random_weights

    if args.out.exists():
        print(f"{args.out} exists; keeping it")
        return 0
    save_random_weights(args.model, args.out, args.seed)
    print(f"wrote {args.out}: CLIP_MODEL={args.model} CLIP_PRETRAINED={args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
