"""The bulk loader's stages: reader threads decode and preprocess, this thread encodes, then writes."""
import numpy as np
from PIL import Image

from tests.images import sample_images
from webserver.services.bulk import STAGES, BulkIngest, find_image_files


def test_each_stage_is_timed_and_the_vectors_are_those_of_a_direct_encode(services, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, (image, _) in enumerate(sample_images(10)):
        image.save(folder / f"{i:03d}.png")
    ingest = BulkIngest(images=services.images, metadata=services.metadata, collection="images", root=folder)
    report = ingest.run(find_image_files(folder), batch_size=4)

    assert report.added == 10 and set(report.seconds) == set(STAGES)
    assert all(report.seconds[stage] > 0 for stage in ("read", "encode", "write"))
    rows = services.metadata.list_images("images", limit=20, offset=0)
    stored = services.vectors.get_vectors("images", [row.id for row in rows])
    direct = services.encoders.clip.encode_images([Image.open(folder / row.filename) for row in rows])
    np.testing.assert_allclose(np.stack([stored[row.id] for row in rows]), direct, atol=1e-5)


def test_metadata_per_file_goes_over_the_folders_and_is_a_search_filter(services, tmp_path):
    folder = tmp_path / "images"
    (folder / "shoes").mkdir(parents=True)
    samples = sample_images(4)
    for i, (image, _) in enumerate(samples):
        image.save(folder / ("shoes" if i < 2 else ".") / f"{i:03d}.png")
    labels = {f"{i:03d}.png": {"label": label} for i, (_, label) in enumerate(samples)}
    labels["shoes/001.png"] = {"label": "by path", "folder": "renamed"}  # the relative path wins over the name
    ingest = BulkIngest(images=services.images, metadata=services.metadata, collection="images", root=folder,
                        file_metadata=labels)
    assert ingest.run(find_image_files(folder), batch_size=2).added == 4

    meta = {row.filename: row.meta for row in services.metadata.list_images("images", limit=10, offset=0)}
    assert meta == {"000.png": {"folder": "shoes", "label": samples[0][1]},
                    "001.png": {"folder": "renamed", "label": "by path"},
                    "002.png": {"label": samples[2][1]}, "003.png": {"label": samples[3][1]}}
