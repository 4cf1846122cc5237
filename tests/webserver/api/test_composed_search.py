"""TIRG collections: image and composed (image + modification text) queries; CLIP ones: text, image and
composed (by a composer over the CLIP space). A query a collection cannot answer is a 400 that says what it
can answer."""
import io

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from tests.images import sample_pngs
from tests.webserver.api.helpers import upload
from webserver.api.app import create_app
from webserver.encoders.registry import EncoderSet

TEXT = "make top-left red object blue"


def tirg_collection(client, name: str = "scenes", count: int = 12) -> list[int]:
    """Fill the TIRG collection (TIRG_TABLE, made at startup when a TIRG model is loaded)."""
    listed = client.get(f"/collections/{name}").json()
    assert (listed["kind"], listed["answers"]) == ("tirg", ["image", "composed"])
    response, _ = upload(client, name, count)
    assert response.status_code == 201, response.text
    return [item["id"] for item in response.json()["items"]]


def test_a_composed_query_ranks_by_the_composed_vector(client, tirg_encoder):
    tirg_collection(client)
    query_png = sample_pngs(1, start=40)[0][0]
    response = client.post("/search", data={"collection": "scenes", "text": TEXT, "top_k": 12},
                           files={"image": ("q.png", query_png, "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "composed" and len(body["results"]) == 12

    # The scores are cosines between compose(query, text) and each stored image's TIRG vector.
    query = tirg_encoder.compose([Image.open(io.BytesIO(query_png))], [TEXT])[0]
    stored = [Image.open(io.BytesIO(client.get(hit["url"]).content)) for hit in body["results"]]
    expected = tirg_encoder.encode_images(stored) @ query
    assert np.allclose([hit["score"] for hit in body["results"]], expected, atol=1e-4)
    image_only = tirg_encoder.encode_images([Image.open(io.BytesIO(query_png))])[0]
    assert not np.allclose(query, image_only, atol=1e-3)  # the text really changed the query


def test_a_composed_query_excludes_the_query_image_given_by_id_or_as_its_bytes(client):
    ids = tirg_collection(client)
    by_id = client.post("/search", data={"text": TEXT, "image_id": ids[3], "top_k": 20})  # default: TIRG_TABLE
    assert by_id.status_code == 200, by_id.text
    hits = [hit["id"] for hit in by_id.json()["results"]]
    assert ids[3] not in hits and len(hits) == len(ids) - 1

    stored_png = client.get(f"/images/{ids[3]}/file").content
    by_file = client.post("/search", data={"collection": "scenes", "text": TEXT, "top_k": 20},
                          files={"image": ("q.png", stored_png, "image/png")}).json()["results"]
    assert [hit["id"] for hit in by_file] == hits  # the stored copy of the uploaded bytes is left out too
    as_image = client.post("/search", data={"collection": "scenes", "top_k": 1},
                           files={"image": ("q.png", stored_png, "image/png")}).json()["results"]
    assert as_image[0]["id"] == ids[3]  # an image search by upload still finds its copy


def test_queries_a_collection_cannot_answer_are_400_naming_what_it_answers(client):
    tirg_collection(client)
    created = client.post("/collections", json={"name": "more_scenes", "encoder": "tirg"})
    assert created.status_code == 201 and created.json()["kind"] == "tirg"
    text_only = client.post("/search", data={"collection": "scenes", "text": "a red cube"})
    assert text_only.status_code == 400
    assert "answers image (file or image_id) and image + modification text" in text_only.json()["detail"]
    image = client.post("/search", data={"collection": "scenes", "image_id": 1})
    assert image.status_code == 200 and image.json()["mode"] == "image"


def test_without_a_tirg_model_tirg_collections_are_refused_clearly(make_settings, encoder, encoders):
    settings = make_settings()
    with TestClient(create_app(settings, encoders)) as client:
        tirg_collection(client, count=3)
    with TestClient(create_app(settings.model_copy(update={"TIRG_CHECKPOINT": None}), EncoderSet(encoder))) as client:
        created = client.post("/collections", json={"name": "more", "encoder": "tirg"})
        assert created.status_code == 400 and "TIRG_CHECKPOINT" in created.json()["detail"]
        listed = {c["name"]: c for c in client.get("/collections").json()["items"]}
        assert listed["scenes"]["servable"] is False and listed["scenes"]["answers"] == []
        refused = client.post("/search", data={"collection": "scenes", "image_id": 1})
        assert refused.status_code == 409
        assert client.post("/search", data={"text": "a dress"}).status_code == 200  # CLIP still serves
        composed = client.post("/search", data={"text": TEXT, "image_id": 1})  # no collection: the default's
        assert composed.status_code == 200, composed.text  # the CLIP collection composes the TIRG one's image
        assert (composed.json()["collection"], composed.json()["composer"]) == ("images", "sum")
        assert client.get("/collections").json()["defaults"] == {"text": "images", "image": "images",
                                                                 "composed": "images"}


def test_an_image_of_any_collection_starts_a_query(client):
    """An image_id of the CLIP collection queries the TIRG one: its stored file is encoded with the searched
    collection's model, and the copy of its bytes there stays out of the results."""
    scenes = tirg_collection(client, count=6)
    response, _ = upload(client, "images", 6)  # the same six images, under other ids
    images = [item["id"] for item in response.json()["items"]]
    assert not set(images) & set(scenes)
    composed = client.post("/search", data={"text": TEXT, "image_id": images[2], "top_k": 10})
    assert composed.status_code == 200, composed.text
    body = composed.json()
    assert body["collection"] == "scenes" and scenes[2] not in [hit["id"] for hit in body["results"]]
    stored_png = client.get(f"/images/{images[2]}/file").content
    by_file = client.post("/search", data={"collection": "scenes", "text": TEXT, "top_k": 10},
                          files={"image": ("q.png", stored_png, "image/png")}).json()["results"]
    assert [h["id"] for h in by_file] == [h["id"] for h in body["results"]]
    assert np.allclose([h["score"] for h in by_file], [h["score"] for h in body["results"]], atol=1e-5)

    image = client.post("/search", data={"collection": "scenes", "image_id": images[4], "top_k": 10}).json()
    assert image["mode"] == "image" and scenes[4] not in [hit["id"] for hit in image["results"]]
    missing = client.post("/search", data={"text": TEXT, "image_id": 987654})
    assert missing.status_code == 404 and "does not exist" in missing.json()["detail"]


def test_the_default_collection_follows_the_query_mode(client):
    tirg_collection(client, count=3)
    upload(client, "images", 3)
    # A browser form sends an empty, nameless part for an unused file input: that is a text query.
    text = client.post("/search", data={"text": "a dress"}, files={"image": ("", b"", "application/octet-stream")})
    assert (text.status_code, text.json()["mode"], text.json()["collection"]) == (200, "text", "images")
    composed = client.post("/search", data={"text": TEXT, "image_id": 1})
    assert (composed.json()["mode"], composed.json()["collection"]) == ("composed", "scenes")
    assert client.get("/collections").json()["defaults"] == {"text": "images", "image": "images",
                                                             "composed": "scenes"}


def test_a_clip_collection_answers_composed_queries_with_the_zero_shot_sum(client, encoder):
    response, _ = upload(client, "images", 8)
    ids = [item["id"] for item in response.json()["items"]]
    listed = client.get("/collections/images").json()
    assert listed["answers"] == ["text", "image", "composed"]
    composed = client.post("/search", data={"collection": "images", "text": TEXT, "image_id": ids[1], "top_k": 20})
    assert composed.status_code == 200, composed.text
    body = composed.json()
    assert (body["mode"], body["composer"]) == ("composed", "sum")
    hits = [hit["id"] for hit in body["results"]]
    assert ids[1] not in hits and len(hits) == 7  # the query's own image is left out

    # The scores are cosines between the composed vector and each stored image's CLIP vector.
    def decoded(image_id):
        return Image.open(io.BytesIO(client.get(f"/images/{image_id}/file").content))

    query = encoder.compose([decoded(ids[1])], [TEXT], "sum")[0]
    expected = encoder.encode_images([decoded(i) for i in hits]) @ query
    assert np.allclose([hit["score"] for hit in body["results"]], expected, atol=1e-4)
    assert client.post("/search", data={"collection": "images", "text": TEXT, "image_id": ids[1],
                                        "composer": "sum"}).json()["results"] == body["results"][:10]


def test_an_indexed_query_image_is_composed_from_its_stored_vector_not_encoded_again(client, encoder, monkeypatch):
    """The CLIP composers take the unit image vector the collection already holds: the same answer as the
    file's bytes uploaded (which are encoded), with no image encode for an image_id of that collection."""
    response, _ = upload(client, "images", 8)
    ids = [item["id"] for item in response.json()["items"]]
    stored_png = client.get(f"/images/{ids[5]}/file").content
    by_file = client.post("/search", data={"collection": "images", "text": TEXT, "top_k": 20},
                          files={"image": ("q.png", stored_png, "image/png")}).json()["results"]

    def no_image_encoding(images):
        raise AssertionError("the query image was encoded")

    monkeypatch.setattr(encoder, "encode_images", no_image_encoding)
    by_id = client.post("/search", data={"collection": "images", "text": TEXT, "image_id": ids[5], "top_k": 20})
    assert by_id.status_code == 200, by_id.text
    assert [h["id"] for h in by_id.json()["results"]] == [h["id"] for h in by_file]
    assert np.allclose([h["score"] for h in by_id.json()["results"]], [h["score"] for h in by_file], atol=1e-5)


def test_a_composer_the_server_lacks_or_a_tirg_collection_cannot_use_is_400(client):
    tirg_collection(client, count=3)
    upload(client, "images", 3)
    trained = client.post("/search", data={"collection": "images", "text": TEXT, "image_id": 4, "composer": "trained"})
    assert trained.status_code == 400 and "CLIP_COMBINER_CHECKPOINT" in trained.json()["detail"]
    on_tirg = client.post("/search", data={"collection": "scenes", "text": TEXT, "image_id": 1, "composer": "sum"})
    assert on_tirg.status_code == 400 and "applies to CLIP collections" in on_tirg.json()["detail"]
    unknown = client.post("/search", data={"collection": "images", "text": TEXT, "image_id": 4, "composer": "magic"})
    assert unknown.status_code == 422
    tirg = client.post("/search", data={"collection": "scenes", "text": TEXT, "image_id": 1}).json()
    assert (tirg["mode"], tirg["composer"]) == ("composed", None)
