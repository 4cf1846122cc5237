"""A fused collection (TIRG and the trained combiner in one vector) made at start, filled and searched
through HTTP: composed queries rank by the fused vectors, image queries work, text ones are a clear 400."""
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.webserver.api.helpers import upload
from tests.webserver.encoders.test_fused import clip_with_combiner  # noqa: F401 - a fixture
from webserver.api.app import create_app
from webserver.encoders.fused import FusedEncoder
from webserver.encoders.registry import EncoderSet

TEXT = "make top-left red object blue"


@pytest.fixture
def fused_client(make_settings, clip_with_combiner, tirg_encoder):  # noqa: F811
    fused = FusedEncoder(tirg_encoder, clip_with_combiner, 0.5)
    app = create_app(make_settings(FUSED_TIRG_WEIGHT=0.5), EncoderSet(clip_with_combiner, tirg_encoder, fused))
    with TestClient(app) as client:
        yield client, fused


def test_a_fused_collection_is_made_at_start_and_answers_composed_and_image_queries(fused_client):
    client, fused = fused_client
    listed = client.get("/collections/fused").json()
    assert (listed["kind"], listed["answers"], listed["dimension"]) == ("fused", ["image", "composed"], fused.dimension)
    response, _ = upload(client, "fused", 10)
    assert response.status_code == 201, response.text
    ids = [item["id"] for item in response.json()["items"]]

    composed = client.post("/search", data={"collection": "fused", "text": TEXT, "image_id": ids[2], "top_k": 5})
    assert composed.status_code == 200, composed.text
    hits = composed.json()["results"]
    # the scores are the fused query's inner products with the fused vectors of the stored images
    source = Image.open(io.BytesIO(client.get(f"/images/{ids[2]}/file").content))
    stored = [Image.open(io.BytesIO(client.get(hit["url"]).content)) for hit in hits]
    expected = fused.encode_images(stored) @ fused.compose([source], [TEXT])[0]
    assert ids[2] not in [hit["id"] for hit in hits] and len(hits) == 5
    np.testing.assert_allclose([hit["score"] for hit in hits], expected, atol=1e-4)

    image = client.post("/search", data={"collection": "fused", "image_id": ids[4], "top_k": 3})
    assert image.status_code == 200 and len(image.json()["results"]) == 3
    text = client.post("/search", data={"collection": "fused", "text": "a red cube"})
    assert text.status_code == 400 and "not text" in text.json()["detail"]
    assert "fused_encoder" in client.get("/readyz").json()["checks"]
