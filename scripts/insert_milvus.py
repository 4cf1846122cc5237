"""Index a folder of images (recursively) into a collection.

    python scripts/insert_milvus.py PATH --collection NAME [--encoder clip|tirg|fused] [--batch-size N]
                                    [--captions FILE]
                                    [--metadata FILE]
    python scripts/insert_milvus.py PATH --collection NAME --server http://127.0.0.1:7000
    python scripts/insert_milvus.py ./tirg/css        # the seed's layout: img.npy + images/000000.png ...

A folder holding img.npy (what `python -m tirg ... --export DIR` writes: row i is the vector of
images/%06d.png) goes into a TIRG collection (TIRG_TABLE) with those vectors, after a check on a few
images that they are what the server's TIRG_CHECKPOINT makes. A captions.json in PATH is used when
--captions is not given.

Re-running is safe: images already in the collection (same bytes) are skipped, so a killed run,
restarted, ends with every image exactly once. Unreadable files are reported and skipped.
By default it opens the stores itself (same settings as the server). An embedded Milvus Lite file can be
opened by one process only: while the server runs on it, use --server to upload through its API.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _bootstrap  # noqa: F401
from tqdm import tqdm


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="folder of images (searched recursively)")
    parser.add_argument("--collection", help="collection name (default: MILVUS_TABLE, or TIRG_TABLE for tirg)")
    parser.add_argument("--encoder", choices=["clip", "tirg", "fused"],
                        help="kind of a new collection: clip (text + image queries) or tirg (image + composed "
                             "queries; needs TIRG_CHECKPOINT) or fused (TIRG and the trained combiner; needs "
                             "FUSED_TIRG_WEIGHT). Default: tirg for a folder with img.npy, else clip")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--captions", type=Path, help="JSON {file: caption} or TSV file<TAB>caption")
    parser.add_argument("--metadata", type=Path,
                        help='JSON {file: {"key": value, ...}}: metadata per image, over the sub-folder\'s '
                             '{"folder": ...}; usable as a search filter')
    parser.add_argument("--server", help="upload through a running server's API instead, e.g. http://127.0.0.1:7000")
    parser.add_argument("--api-key", help="with --server: a key of the server's API_KEYS (default: the first "
                                          "of API_KEYS in this environment)")
    return parser.parse_args(argv)


def default_collection(args: argparse.Namespace, settings) -> str:
    defaults = {"tirg": settings.TIRG_TABLE, "fused": settings.FUSED_TABLE}
    return args.collection or defaults.get(args.encoder, settings.MILVUS_TABLE)


def run_local(args: argparse.Namespace, files: list[Path]) -> int:
    from _ingest import ingest_with_progress

    from config import Settings
    from webserver.errors import DomainError
    from webserver.services.bulk import PrecomputedVectors, load_captions, load_metadata
    from webserver.services.container import build_services, prepare_stores

    settings = Settings()
    collection = default_collection(args, settings)
    try:
        precomputed = PrecomputedVectors(args.path) if args.seed_layout else None
        services = build_services(settings)
        services.vectors.ping()  # fail now, with the lock hint, rather than after reading files
        prepare_stores(services, [(collection, args.encoder)])
        encoder = services.collections.require_servable(collection)
        if precomputed is not None:
            agreement = precomputed.check_made_by(encoder, files)
            print(f"using {precomputed.path} ({len(precomputed.matrix)} vectors; cosine >= {agreement:.4f} "
                  f"with {encoder.encoder_id} on a sample)")
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        if "held by another process" in exc.detail:
            print(f"hint: python scripts/insert_milvus.py {args.path} --collection {collection} "
                  f"--server http://127.0.0.1:{settings.PORT}", file=sys.stderr)
        return 2
    try:
        report = ingest_with_progress(services, collection, args.path, files, batch_size=args.batch_size,
                                      captions=load_captions(args.captions),
                                      file_metadata=load_metadata(args.metadata),
                                      precomputed=precomputed)
    except DomainError as exc:
        print(f"\nerror: {exc.detail} (re-run to resume: finished batches are kept)", file=sys.stderr)
        return 1
    for path, reason in report.failed:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    info = services.collections.describe(collection)
    print(f"added {report.added}, already indexed {report.already_indexed}, failed {len(report.failed)}; "
          f"{collection} now holds {info.metadata_count} images ({info.milvus_count} vectors)")
    services.close()
    return 0


def run_remote(args: argparse.Namespace, files: list[Path]) -> int:
    """Upload through a running server (which holds the stores); files are checked here first so one
    bad file does not get a whole batch refused."""
    import json

    import httpx

    from config import Settings
    from webserver.errors import DomainError
    from webserver.services.bulk import load_captions, load_metadata, upload_for
    from webserver.services.imaging import decode_image

    settings = Settings()
    collection = default_collection(args, settings)
    captions, metadata = load_captions(args.captions), load_metadata(args.metadata)
    added = duplicates = failed = 0
    key = args.api_key or next(iter(settings.write_keys), None)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=args.server, timeout=300, headers=headers) as client, \
            tqdm(total=len(files), unit="img", desc=f"uploading to {collection}") as bar:
        batch_size = min(args.batch_size, files_per_request(client))
        created = client.post("/collections", json={"name": collection, "encoder": args.encoder})
        existing = client.get(f"/collections/{collection}")
        if created.status_code not in (201, 409) or existing.status_code != 200:
            print(f"error: {created.status_code} {created.text}", file=sys.stderr)
            return 1
        if existing.json()["kind"] != args.encoder:
            print(f"error: collection {collection} holds {existing.json()['kind']} vectors, not "
                  f"{args.encoder}; pick another name", file=sys.stderr)
            return 1
        for start in range(0, len(files), batch_size):
            parts, caption_list, meta_list = [], [], []
            for path in files[start:start + batch_size]:
                try:
                    data = path.read_bytes()
                    decode_image(data, name=str(path), max_bytes=settings.MAX_UPLOAD_BYTES,
                                 max_pixels=settings.MAX_IMAGE_PIXELS)
                except (OSError, DomainError) as exc:
                    failed += 1
                    tqdm.write(f"skipped {path}: {getattr(exc, 'detail', None) or exc}", file=sys.stderr)
                    continue
                upload = upload_for(path, data, args.path, captions, metadata)
                parts.append(("files", (upload.filename, data)))
                caption_list.append(upload.caption or "")
                meta_list.append(json.dumps(upload.meta))
            if parts:
                try:
                    items, refused = post_in_parts(client, collection, parts, caption_list, meta_list)
                except RuntimeError as exc:
                    print(f"\nerror: {exc}", file=sys.stderr)
                    return 1
                for filename, reason in refused:
                    tqdm.write(f"skipped {filename}: {reason}", file=sys.stderr)
                failed += len(refused)
                duplicates += sum(item["duplicate"] for item in items)
                added += sum(not item["duplicate"] for item in items)
            bar.update(min(batch_size, len(files) - start))
            bar.set_postfix(added=added, skipped=duplicates, failed=failed)
    print(f"added {added}, already indexed {duplicates}, failed {failed}")
    return 0


def files_per_request(client) -> int:
    """The server's MAX_FILES_PER_REQUEST, as its OpenAPI document states it (maxItems of `files`)."""
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/collections/{name}/images"]["post"]["requestBody"]["content"]["multipart/form-data"]
    name = body["schema"]["$ref"].rsplit("/", 1)[-1]
    return int(schema["components"]["schemas"][name]["properties"]["files"].get("maxItems", 10**9))


def post_in_parts(client, collection: str, parts: list, captions: list[str], metas: list[str]):
    """POST one batch; a 413 (the server allows smaller files or requests than this side assumed) splits
    it in halves down to single files, and a single file the server still refuses is
    listed as failed. Returns (added items, [(filename, reason)]); any other refusal raises RuntimeError."""
    response = client.post(f"/collections/{collection}/images", files=parts,
                           data={"captions": captions, "metadata": metas})
    if response.status_code == 201:
        return response.json()["items"], []
    if response.status_code == 413 and len(parts) == 1:
        return [], [(parts[0][1][0], response.json().get("detail", "too large"))]
    if response.status_code != 413:
        raise RuntimeError(f"{response.status_code} {response.text}")
    half = len(parts) // 2
    first = post_in_parts(client, collection, parts[:half], captions[:half], metas[:half])
    second = post_in_parts(client, collection, parts[half:], captions[half:], metas[half:])
    return first[0] + second[0], first[1] + second[1]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.path.is_dir():
        print(f"error: {args.path} is not a folder", file=sys.stderr)
        return 2
    from webserver.services.bulk import PrecomputedVectors, find_image_files

    files = find_image_files(args.path)
    args.seed_layout = PrecomputedVectors.present(args.path)  # img.npy beside the images
    if args.encoder is None:
        args.encoder = "tirg" if args.seed_layout else "clip"
    if args.captions is None and (args.path / "captions.json").is_file():
        args.captions = args.path / "captions.json"
    if args.server and args.seed_layout:
        print("note: --server uploads the images and the server encodes them; img.npy is not sent",
              file=sys.stderr)
    return run_remote(args, files) if args.server else run_local(args, files)


if __name__ == "__main__":
    sys.exit(main())
