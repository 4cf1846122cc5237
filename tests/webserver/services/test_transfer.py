"""Export and import without encoding: Lite + SQLite -> a Milvus server + MariaDB, clip-retrieval's
layout, resuming, and refusals."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.images import sample_images, sample_uploads
from webserver.errors import EncoderMismatch, InvalidInput
from webserver.services.container import build_services
from webserver.services.images import Upload
from webserver.services.transfer import export_collection, import_collection, open_dump


@pytest.fixture
def source(make_settings, encoders, tmp_path):
    services = build_services(make_settings(DATA_DIR=tmp_path / "source"), encoders)
    services.metadata.create_schema()
    services.collections.create("fashion")
    uploads = [Upload(data=u.data, filename=u.filename, caption=f"a {u.meta['label']} number {i}",
                      meta={**u.meta, "n": i, "tags": ["x", i]}) for i, u in enumerate(sample_uploads(30))]
    added = services.images.add("fashion", uploads)
    services.images.delete(added[3].id)  # a gap in the ids
    yield services
    services.close()


def by_sha(services, collection: str) -> dict[str, dict]:
    rows = services.metadata.list_images(collection, limit=1000, offset=0)
    return {row.sha256: {"caption": row.caption, "meta": row.meta, "filename": row.filename, "size": (row.width,
            row.height), "created": row.created, "bytes": services.files.read(row.path), "id": row.id}
            for row in rows}


def top10(services, collection: str, queries: np.ndarray) -> list[list[tuple[float, str]]]:
    sha_of = {row.id: row.sha256 for row in services.metadata.list_images(collection, limit=1000, offset=0)}
    return [[(hit.score, sha_of[hit.id]) for hit in services.vectors.search(collection, query, limit=10)]
            for query in queries]


def clear_of_ties(hits: list[tuple[float, str]], tie: float = 1e-5) -> list[str]:
    """The images of a top 10 in rank order, those within `tie` of a neighbour's score in name order, the
    last group left out (it may tie with the 11th): two exact searches (the server's and the in-memory
    copy's) may order equal scores either way."""
    scores = [score for score, _ in hits]
    groups: list[list[str]] = []
    for i, (score, sha) in enumerate(hits):
        if i and scores[i - 1] - score < tie:
            groups[-1].append(sha)
        else:
            groups.append([sha])
    return [sha for group in groups[:-1] for sha in sorted(group)]


def test_lite_and_sqlite_to_a_milvus_server_and_mariadb_serve_the_same(source, make_settings, encoders, tmp_path):
    dump = tmp_path / "dump"
    report = export_collection(source, "fashion", dump, shard_size=12)
    manifest = json.loads((dump / "manifest.json").read_text())
    assert report.images == 29 and manifest["counts"] == {"images": 29, "files": 29, "shards": 3}
    assert manifest["encoder_id"] == source.encoders.clip.encoder_id

    target = build_services(make_settings(DATA_DIR=tmp_path / "target", milvus="standalone", metadata="mariadb"),
                            encoders)
    try:
        target.metadata.create_schema()
        target.collections.create("other")
        target.images.add("other", sample_uploads(3, start=100))  # takes ids the dump uses
        imported = import_collection(target, open_dump(dump), batch_size=10)
        assert (imported.collection, imported.added, imported.already_present) == ("fashion", 29, 0)
        assert imported.remapped  # the taken ids got new ones, and the mapping is reported

        before, after = by_sha(source, "fashion"), by_sha(target, "fashion")
        assert set(before) == set(after)
        for sha, row in before.items():
            assert {**after[sha], "id": None} == {**row, "id": None}
            assert after[sha]["id"] == imported.remapped.get(row["id"], row["id"])
        queries = np.concatenate([source.encoders.clip.encode_texts([f"a photo of number {i}" for i in range(25)]),
                                  source.encoders.clip.encode_images([im for im, _ in sample_images(25, 200)])])
        for got, want in zip(top10(target, "fashion", queries), top10(source, "fashion", queries), strict=True):
            np.testing.assert_allclose([score for score, _ in got], [score for score, _ in want], atol=1e-5)
            assert clear_of_ties(got) == clear_of_ties(want)

        again = import_collection(target, open_dump(dump))  # nothing twice
        assert (again.added, again.already_present) == (0, 29)
        assert target.metadata.count_images("fashion") == target.vectors.count("fashion") == 29
    finally:
        target.close()


def test_an_interrupted_import_resumes_without_duplicates(source, make_settings, encoders, tmp_path, monkeypatch):
    dump = tmp_path / "dump"
    export_collection(source, "fashion", dump)
    target = build_services(make_settings(DATA_DIR=tmp_path / "target"), encoders)
    target.metadata.create_schema()
    upsert, calls = target.vectors.upsert, []

    def killed_on_the_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return upsert(*args, **kwargs)

    monkeypatch.setattr(target.vectors, "upsert", killed_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        import_collection(target, open_dump(dump), batch_size=10)
    monkeypatch.undo()
    assert target.metadata.count_images("fashion") == 10  # the first batch, whole
    resumed = import_collection(target, open_dump(dump), batch_size=10)
    assert (resumed.added, resumed.already_present) == (19, 10)
    assert target.metadata.count_images("fashion") == target.vectors.count("fashion") == 29
    target.close()


def test_clip_retrieval_output_imports_with_the_encoder_named(make_settings, encoders, tmp_path):
    root, images = tmp_path / "clip-retrieval", tmp_path / "images"
    (root / "img_emb").mkdir(parents=True)
    (root / "metadata").mkdir()
    images.mkdir()
    paths = []
    for i, (image, label) in enumerate(sample_images(6)):
        image.save(path := images / f"{label.replace(' ', '_')}_{i}.png")
        paths.append(path)
    clip = encoders.clip
    vectors = clip.encode_images([image for image, _ in sample_images(6)])
    np.save(root / "img_emb" / "img_emb_0.npy", vectors.astype(np.float16))  # clip-retrieval writes fp16
    pq.write_table(pa.table({"image_path": [str(p) for p in paths], "caption": [p.stem for p in paths]}),
                   root / "metadata" / "metadata_0.parquet")
    with pytest.raises(InvalidInput, match="--encoder"):
        open_dump(root)

    target = build_services(make_settings(DATA_DIR=tmp_path / "target"), encoders)
    target.metadata.create_schema()
    report = import_collection(target, open_dump(root, clip.encoder_id), collection="cr")
    assert report.added == 6 and target.vectors.count("cr") == 6
    rows = target.metadata.list_images("cr", limit=10, offset=0)
    assert [row.caption for row in rows] == [p.stem for p in paths]
    hit = target.vectors.search("cr", vectors[2], limit=1)[0]
    assert target.metadata.get_images([hit.id])[hit.id].filename == paths[2].name
    target.close()


def test_a_dump_of_another_model_or_a_damaged_shard_is_refused(source, make_settings, encoders, tmp_path):
    dump = tmp_path / "dump"
    export_collection(source, "fashion", dump)
    manifest = json.loads((dump / "manifest.json").read_text())
    target = build_services(make_settings(DATA_DIR=tmp_path / "target"), encoders)
    target.metadata.create_schema()
    try:
        other = {**manifest, "encoder_id": "open_clip/ViT-B-32/openai"}
        (dump / "manifest.json").write_text(json.dumps(other))
        with pytest.raises(EncoderMismatch, match="ViT-B-32"):
            import_collection(target, open_dump(dump))
        (dump / "manifest.json").write_text(json.dumps(manifest))
        with open(dump / "img_emb" / "img_emb_0.npy", "r+b") as handle:
            handle.seek(-4, 2)
            handle.write(b"\0\0\0\0")
        with pytest.raises(InvalidInput, match="checksum"):
            open_dump(dump)
        assert target.metadata.get_collection("fashion") is None  # nothing was written
    finally:
        target.close()
