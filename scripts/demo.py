"""The offline demo in one command: make the demo scenes, index them, serve the page and the API.

    python scripts/demo.py [--scenes 5000] [--dir data/demo] [--index-only]

1. Generates the demo scenes (the CSS generator's test split: 3d renderer, 64 px, with a caption per
   image) into DIR/scenes, unless they are there already.
2. Indexes them, with progress bars, into a CLIP collection (MILVUS_TABLE, `images`: text and image
   queries, with the captions) and a TIRG collection (TIRG_TABLE, `scenes`: image and composed queries).
   Images already indexed are skipped, so the second start is quick.
3. Serves the page and the API (`python main.py` with the same settings) at http://127.0.0.1:PORT/.

Models: the ones shipped in models/ (trained here by scripts/train_demo_clip.py and python -m tirg, see
their cards), so nothing is downloaded. Any setting can be overridden by environment variables as for
main.py; `CLIP_MODEL=ViT-B-32 CLIP_PRETRAINED=openai` (or a local checkpoint file) uses real CLIP for the
text and image collection, indexed separately under DIR/index-<model>.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import _bootstrap
from tqdm import tqdm

ROOT = _bootstrap.ROOT
DEMO_MODELS = {"CLIP_MODEL": "css-clip", "CLIP_PRETRAINED": str(ROOT / "models" / "css-clip.pt"),
               "TIRG_CHECKPOINT": str(ROOT / "models" / "tirg-css.pt"), "LOG_FORMAT": "text"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=ROOT / "data" / "demo", help="scenes and indexes go here")
    parser.add_argument("--scenes", type=int, default=5000, help="scenes to generate (the first start only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--index-only", action="store_true", help="generate and index, then exit")
    return parser.parse_args(argv)


def demo_environment(args: argparse.Namespace) -> dict[str, str]:
    """The demo's models and data folder, under whatever the caller's environment already sets."""
    env = {**DEMO_MODELS, **os.environ}
    if not os.environ.get("DATA_DIR"):
        clip = f"{env['CLIP_MODEL']}-{Path(env['CLIP_PRETRAINED']).stem}"
        env["DATA_DIR"] = str(args.dir / ("index-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", clip)))
    return env


def ensure_scenes(args: argparse.Namespace) -> Path:
    from tirg.data import DATA_FILE
    from tirg.scenes.generate import generate

    scenes = args.dir / "scenes"
    if not (scenes / DATA_FILE).is_file():
        with tqdm(total=args.scenes, unit="img", desc="rendering demo scenes") as bar:
            generate(scenes, train_images=0, test_images=args.scenes, renderer="3d", image_size=64,
                     seed=args.seed, progress=bar.update)
    return scenes


def open_services():
    """The services with the demo's models loaded: a missing or unloadable model stops here, before any
    scene is rendered."""
    from config import Settings
    from webserver.services.container import build_services, prepare_stores

    services = build_services(Settings())
    prepare_stores(services)
    return services


def index_scenes(services, scenes: Path, batch_size: int) -> None:
    from _ingest import ingest_with_progress

    from webserver.encoders.base import CLIP, TIRG
    from webserver.services.bulk import load_captions

    settings = services.settings
    files = sorted((scenes / "images").glob("css_test_*.png"))
    captions = load_captions(scenes / "captions.json")
    for name, kind in ((settings.MILVUS_TABLE, CLIP), (settings.TIRG_TABLE, TIRG)):
        if not services.collections.is_servable(services.collections.ensure(name, kind)):
            reencode(services, name, batch_size)
        report = ingest_with_progress(services, name, scenes / "images", files, batch_size=batch_size,
                                      captions=captions)
        for path, reason in report.failed:
            print(f"skipped {path}: {reason}", file=sys.stderr)
        print(f"{name} ({kind}): added {report.added}, already indexed {report.already_indexed}, "
              f"failed {len(report.failed)}; holds {services.collections.describe(name).metadata_count} images",
              flush=True)


def reencode(services, name: str, batch_size: int) -> None:
    """The demo's models changed since it indexed (a newer shipped model, or another CLIP_* / TIRG_*
    setting): encode the stored scenes again rather than serve a collection the server would refuse."""
    from webserver.services.maintenance import reindex

    old_encoder = services.collections.get_record(name).encoder_id
    with tqdm(total=services.metadata.count_images(name), unit="img", desc=f"re-encoding {name}") as bar:
        reindex(services, name, batch_size=batch_size, on_batch=bar.update)
    print(f"{name}: re-encoded (it held vectors from {old_encoder})", flush=True)


def example_query(scenes: Path) -> str:
    """A real composed query of the demo scenes, to show what to try on the page."""
    from tirg.data import CSSDataset

    split = CSSDataset(scenes, "test", load_images=False)
    query = split.queries[0]
    return (f"search the text '{split.captions[query.source]}', click that scene, type '{query.text}' and search: "
            f"the top results should show '{split.captions[query.target]}'.")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.update(demo_environment(args))
    from webserver.errors import DomainError

    try:
        services = open_services()
        scenes = ensure_scenes(args)
        index_scenes(services, scenes, args.batch_size)
        services.close()
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    if args.index_only:
        return 0
    port = os.environ.get("PORT", "7000")
    print(f"serving the demo at http://127.0.0.1:{port}/ (API docs at /docs). Try: {example_query(scenes)}",
          flush=True)
    os.execv(sys.executable, [sys.executable, str(ROOT / "main.py")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
