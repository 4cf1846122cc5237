"""Real images for tests (the loaders live in scripts/_samples.py, shared with the benchmarks)."""
from __future__ import annotations

from scripts._samples import FASHION_MNIST, LABELS, png_bytes, sample_images, sample_pngs

__all__ = ["FASHION_MNIST", "LABELS", "png_bytes", "sample_images", "sample_pngs", "sample_uploads"]


def sample_uploads(count: int, start: int = 0):
    """Fashion-MNIST PNGs as the image service's uploads, labelled in their metadata."""
    from webserver.services.images import Upload

    return [Upload(data=data, filename=f"{start + i}.png", meta={"label": label})
            for i, (data, label) in enumerate(sample_pngs(count, start))]
