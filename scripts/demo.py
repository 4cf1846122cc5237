"""The offline demo in one command: make the demo scenes, index them, serve the page and the API.

    python scripts/demo.py [--scenes 5000] [--fashion 10000] [--dir data/demo] [--index-only]

1. Generates the demo scenes (the CSS generator's test split: 3d renderer, 64 px, with a caption per
   image) into DIR/scenes, and writes Fashion-MNIST's test images (Debian's dataset-fashion-mnist, where
   installed) into DIR/fashion, unless they are there already.
2. Indexes them, with progress bars: the scenes into a CLIP collection (MILVUS_TABLE, `images`: text,
   image and composed queries, with the captions; composed by the combiner trained over css-clip) and a
   TIRG collection (TIRG_TABLE, `scenes`: image and composed queries) and a fused one (FUSED_TABLE, `fused`:
   TIRG and the combiner in one vector, the best composed recall); the Fashion-MNIST images into a
   CLIP collection `fashion`, each with its class name as caption and metadata `{"label": "<class name>"}`.
   Images already indexed are skipped, so the second start is quick.
3. Serves the page and the API (`python main.py` with the same settings) at http://127.0.0.1:PORT/.

Models: the ones shipped in models/ (trained here by scripts/train_demo_clip.py and python -m tirg, see
their cards), so nothing is downloaded. Any setting can be overridden by environment variables as for
main.py; `CLIP_MODEL=ViT-B-32 CLIP_PRETRAINED=openai` (or a local checkpoint file) uses real CLIP for the
text and image collection, indexed separately under DIR/index-<model>.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import _bootstrap
from tqdm import tqdm

ROOT = _bootstrap.ROOT
FASHION = "fashion"
DEMO_MODELS = {"CLIP_MODEL": "css-clip", "CLIP_PRETRAINED": str(ROOT / "models" / "css-clip.pt"),
               "CLIP_COMBINER_CHECKPOINT": str(ROOT / "models" / "css-clip-combiner.pt"),
               "TIRG_CHECKPOINT": str(ROOT / "models" / "tirg-css.pt"), "FUSED_TIRG_WEIGHT": "0.5",
               "LOG_FORMAT": "text"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=ROOT / "data" / "demo", help="scenes and indexes go here")
    parser.add_argument("--scenes", type=int, default=5000, help="scenes to generate (the first start only)")
    parser.add_argument("--fashion", type=int, default=10000,
                        help="Fashion-MNIST test images for the `fashion` collection (the first start only; 0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--index-only", action="store_true", help="generate and index, then exit")
    return parser.parse_args(argv)


def demo_environment(args: argparse.Namespace) -> dict[str, str]:
    """The demo's models and data folder, under whatever the caller's environment already sets."""
    env = {**DEMO_MODELS, **os.environ}
    other_clip = any(env[name] != DEMO_MODELS[name] for name in ("CLIP_MODEL", "CLIP_PRETRAINED"))
    if other_clip and "CLIP_COMBINER_CHECKPOINT" not in os.environ:
        del env["CLIP_COMBINER_CHECKPOINT"]  # trained for css-clip: other CLIP weights compose by the sum
        if "FUSED_TIRG_WEIGHT" not in os.environ:
            del env["FUSED_TIRG_WEIGHT"]  # the fusion's CLIP half is that combiner
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


def ensure_fashion(args: argparse.Namespace) -> Path | None:
    """Fashion-MNIST's test images as PNG files in DIR/fashion/images, with labels.json (written last: the
    folder is whole when it is there); None where the data set is not installed or --fashion is 0."""
    from _samples import LABELS, fashion_mnist
    from PIL import Image

    folder = args.dir / FASHION
    if args.fashion <= 0:
        return None
    if (folder / "labels.json").is_file():
        return folder
    data = fashion_mnist("test")
    if data is None:
        print("no `fashion` collection: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
        return None
    pixels, classes = data
    (folder / "images").mkdir(parents=True, exist_ok=True)
    labels = {}
    for i in tqdm(range(min(args.fashion, len(pixels))), unit="img", desc="writing Fashion-MNIST test images"):
        name = f"fmnist_test_{i:05d}.png"
        Image.fromarray(pixels[i]).save(folder / "images" / name)
        labels[name] = LABELS[classes[i]]
    (folder / "labels.json").write_text(json.dumps(labels, indent=0))
    return folder


def index_demo(services, scenes: Path, fashion: Path | None, batch_size: int) -> None:
    from webserver.encoders.base import CLIP, FUSED, TIRG
    from webserver.services.bulk import load_captions

    settings = services.settings
    scene_files = sorted((scenes / "images").glob("css_test_*.png"))
    captions = load_captions(scenes / "captions.json")
    loaded = services.encoders.by_kind
    for name, kind in ((settings.MILVUS_TABLE, CLIP), (settings.TIRG_TABLE, TIRG), (settings.FUSED_TABLE, FUSED)):
        if kind not in loaded:
            continue
        index_collection(services, name, kind, scenes / "images", scene_files, batch_size, captions)
    if fashion is not None:
        labels = json.loads((fashion / "labels.json").read_text())
        index_collection(services, FASHION, CLIP, fashion / "images", sorted((fashion / "images").glob("*.png")),
                         batch_size, labels, {name: {"label": label} for name, label in labels.items()})


def index_collection(services, name: str, kind: str, root: Path, files: list[Path], batch_size: int,
                     captions: dict[str, str], file_metadata: dict[str, dict] | None = None) -> None:
    from _ingest import ingest_with_progress

    if not services.collections.is_servable(services.collections.ensure(name, kind)):
        reencode(services, name, batch_size)
    report = ingest_with_progress(services, name, root, files, batch_size=batch_size, captions=captions,
                                  file_metadata=file_metadata)
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
        index_demo(services, scenes, ensure_fashion(args), args.batch_size)
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
