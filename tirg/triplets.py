"""Your own triplets (the FashionIQ / CIRR style): a folder of images plus `triplets.jsonl`, one line each:

    {"source": "shirts/123.jpg", "text": "is blue with long sleeves", "target": "shirts/456.jpg", "split": "train"}

Paths are relative to the folder; `split` is "train" or "test" (default "train"). A split's gallery is
every image its triplets name, each image its own label. The same interface as CSSDataset, so the `tirg`
CLI trains TIRG (`--dataset=triplets`) and the CLIP combiner on it with the same Recall@K protocol.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tirg.data import CSSDataset, Query, queries_by_source

TRIPLETS_FILE = "triplets.jsonl"
FIELDS = ("source", "text", "target")


def read_triplets(root: Path) -> list[dict]:
    path = root / TRIPLETS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (one JSON object per line: {', '.join(FIELDS)}, split)")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
        missing = [f for f in FIELDS if not isinstance(row.get(f), str) or not row[f].strip()] \
            if isinstance(row, dict) else list(FIELDS)
        if missing:
            raise ValueError(f"{path}:{number}: needs the strings {', '.join(missing)}")
        if row.setdefault("split", "train") not in ("train", "test"):
            raise ValueError(f"{path}:{number}: split must be train or test, not {row['split']!r}")
        rows.append(row)
    return rows


class TripletDataset(CSSDataset):
    """One split of a triplet folder."""

    def __init__(self, root: str | Path, split: str, image_size: int = 64, load_images: bool = True):
        self.root = Path(root)
        self.split = split
        self.image_size = image_size
        rows = [row for row in read_triplets(self.root) if row["split"] == split]
        if not rows:
            raise ValueError(f"{self.root / TRIPLETS_FILE}: no triplets with split {split!r}")
        self.names = sorted({row["source"] for row in rows} | {row["target"] for row in rows})
        absent = [name for name in self.names if not (self.root / name).is_file()]
        if absent:
            raise FileNotFoundError(f"{len(absent)} image(s) named in {TRIPLETS_FILE} are not under {self.root}, "
                                    f"e.g. {absent[0]}")
        index = {name: i for i, name in enumerate(self.names)}
        self.objects = [[] for _ in self.names]  # no scene objects: drawn renderers do not apply
        self.labels = np.arange(len(self.names), dtype=np.int64)
        self.mods = []
        self.queries = [Query(index[row["source"]], row["text"].strip(), index[row["target"]]) for row in rows]
        self.captions = None
        self._by_source = queries_by_source(self.queries)
        self.images = self._load_images() if load_images else None

    def image_path(self, index: int) -> Path:
        return self.root / self.names[index]

    def texts(self) -> list[str]:
        return sorted({query.text for query in self.queries})
