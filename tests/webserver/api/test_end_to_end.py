"""The whole API on every store combination: Milvus Lite, milvus-lite's server or the real Milvus x SQLite or
MariaDB."""
import pytest

from tests.webserver.api.helpers import upload


@pytest.mark.parametrize("milvus, metadata", [("lite", "sqlite"), ("lite", "mariadb"),
                                              ("server", "sqlite"), ("server", "mariadb"),
                                              ("standalone", "sqlite"), ("standalone", "mariadb")])
def test_collection_life_cycle(make_client, milvus, metadata):
    client = make_client(milvus=milvus, metadata=metadata)
    assert client.get("/readyz").json()["status"] == "ready"

    assert client.post("/collections", json={"name": "fashion"}).status_code == 201
    assert "fashion" in [c["name"] for c in client.get("/collections").json()["items"]]

    response, samples = upload(client, "fashion", 12)
    assert response.status_code == 201, response.text
    ids = [item["id"] for item in response.json()["items"]]
    assert len(set(ids)) == 12 and not any(item["duplicate"] for item in response.json()["items"])

    again, _ = upload(client, "fashion", 2)
    assert [item["id"] for item in again.json()["items"]] == ids[:2]
    assert all(item["duplicate"] for item in again.json()["items"])

    detail = client.get("/collections/fashion").json()
    assert (detail["milvus_count"], detail["metadata_count"], detail["servable"]) == (12, 12, True)

    image = client.get(f"/images/{ids[3]}").json()
    assert image["metadata"]["label"] == samples[3][1] and image["caption"] == f"a photo of a {samples[3][1]}"
    file = client.get(image["url"])
    assert file.content == samples[3][0] and file.headers["content-type"] == "image/png"

    by_file = client.post("/search", data={"collection": "fashion", "top_k": 3},
                          files={"image": ("q.png", samples[5][0], "image/png")}).json()
    assert by_file["mode"] == "image" and by_file["results"][0]["id"] == ids[5]
    assert by_file["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)

    by_id = client.post("/search", data={"collection": "fashion", "image_id": ids[5], "top_k": 12}).json()
    assert ids[5] not in [hit["id"] for hit in by_id["results"]] and len(by_id["results"]) == 11

    label = samples[0][1]
    filtered = client.post("/search", data={"collection": "fashion", "text": "a photo", "top_k": 50,
                                            "filter": f'{{"label": "{label}"}}'}).json()
    assert filtered["mode"] == "text"
    wanted = {i for i, s in zip(ids, samples, strict=True) if s[1] == label}
    assert {hit["id"] for hit in filtered["results"]} == wanted

    page = client.get("/collections/fashion/images", params={"limit": 5, "offset": 10}).json()
    assert page["total"] == 12 and [item["id"] for item in page["items"]] == ids[10:]

    assert client.delete(f"/images/{ids[0]}").status_code == 204
    assert client.get(f"/images/{ids[0]}").status_code == 404
    detail = client.get("/collections/fashion").json()
    assert (detail["milvus_count"], detail["metadata_count"]) == (11, 11)

    assert client.delete("/collections/fashion").status_code == 204
    assert client.get("/collections/fashion").status_code == 404
    assert client.get(f"/images/{ids[1]}/file").status_code == 404
