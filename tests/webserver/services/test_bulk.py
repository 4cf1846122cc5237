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
