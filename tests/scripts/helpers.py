import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, TINY_MODEL
from tests.images import sample_images


def script_env(data_dir: Path, checkpoint: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MILVUS_", "MYSQL_", "TIRG_"))}
    env.update(DATA_DIR=str(data_dir), CLIP_MODEL=TINY_MODEL, CLIP_PRETRAINED=str(checkpoint), DEVICE="cpu")
    env.update(extra)
    return env


def run_script(name: str, *args: str, env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, **kwargs)


def write_image_folder(folder: Path, count: int) -> list[Path]:
    """Fashion-MNIST images as PNG files in class sub-folders, plus two files that are not images."""
    paths = []
    for i, (image, label) in enumerate(sample_images(count)):
        path = folder / label.replace(" ", "_") / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        paths.append(path)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (folder / "empty.jpg").write_bytes(b"")
    return paths


def load_script(name: str):
    """Import scripts/<name>.py as a module (scripts import `_bootstrap` from their own folder)."""
    import importlib.util

    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
