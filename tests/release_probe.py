"""Drive one checkout of the project (another release's, or this one) through its HTTP API, as a user would.

    python tests/release_probe.py ROOT write|read OUT.json    (settings from the environment)

`write` fills a data dir (collections, images with captions and metadata, a delete), then both modes dump
what the data dir serves: collection records, image records, the bytes of every stored file (digests) and
the answers to text, image and composed searches. Run by one release and then by another on the same
data dir, the two dumps must be equal.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

# The checkout under test first; not this file's folder, whose `scripts` test package would shadow the
# checkout's scripts/ folder.
HERE = Path(__file__).resolve().parent
sys.path[:] = [str(Path(sys.argv[1]).resolve())] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

from fastapi.testclient import TestClient  # noqa: E402

from config import Settings  # noqa: E402
from tests.images import sample_pngs  # noqa: E402
from webserver.api.app import create_app  # noqa: E402


def add(client: TestClient, collection: str, start: int, count: int) -> list[int]:
    pngs = sample_pngs(count, start)
    files = [("files", (f"{collection}_{start + i:03d}.png", data, "image/png")) for i, (data, _) in enumerate(pngs)]
    fields = {"captions": [f"a {label}, number {start + i}" for i, (_, label) in enumerate(pngs)],
              "metadata": [json.dumps({"label": label, "n": start + i, "tags": ["x", i], "ratio": i / 7})
                           for i, (_, label) in enumerate(pngs)]}
    response = client.post(f"/collections/{collection}/images", files=files, data=fields)
    assert response.status_code == 201, response.text
    return [item["id"] for item in response.json()["items"]]


def write(client: TestClient) -> None:
    assert client.post("/collections", json={"name": "fashion"}).status_code == 201
    ids = add(client, "fashion", 0, 12)
    assert client.delete(f"/images/{ids[3]}").status_code == 204  # a gap in the ids
    add(client, "images", 20, 3)
    add(client, "scenes", 40, 5)


def search(client: TestClient, **fields) -> list[list]:
    response = client.post("/search", data={"top_k": 5, **fields})
    assert response.status_code == 200, response.text
    return [[hit["id"], round(hit["score"], 4), hit["caption"], hit["metadata"]] for hit in response.json()["results"]]


def dump(client: TestClient) -> dict:
    collections = {c["name"]: c for c in client.get("/collections").json()["items"]}
    out: dict = {"collections": {name: {k: c[k] for k in ("name", "encoder_id", "dimension", "kind")}
                                 for name, c in collections.items()}, "images": {}, "files": {}}
    for name in collections:
        items = client.get(f"/collections/{name}/images", params={"limit": 1000}).json()["items"]
        out["images"][name] = items
        for item in items:
            body = client.get(f"/images/{item['id']}/file").content
            out["files"][item["id"]] = hashlib.sha256(body).hexdigest()
    first_fashion, first_scene = out["images"]["fashion"][0]["id"], out["images"]["scenes"][0]["id"]
    out["search"] = {
        "text": search(client, collection="fashion", text="a dress"),
        "image": search(client, collection="fashion", image_id=first_fashion),
        "composed": search(client, collection="scenes", image_id=first_scene, text="make top-left red object blue"),
        "scene_image": search(client, collection="scenes", image_id=first_scene),
    }
    return out


def main() -> int:
    root, mode, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    with TestClient(create_app(Settings(_env_file=None))) as client:
        if mode == "write":
            write(client)
        out.write_text(json.dumps(dump(client), indent=1, sort_keys=True))
    print(f"{root}: {mode} done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
