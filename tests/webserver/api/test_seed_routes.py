"""The seed's routes for old clients: its names and response shapes, proper status codes on errors."""
from tests.images import sample_pngs

TEXT = "make top-left red object blue"


def fill_scenes(client, count: int = 8) -> list[bytes]:
    """Images named as `python -m tirg --export` names them, in the TIRG collection (TIRG_TABLE)."""
    samples = [data for data, _ in sample_pngs(count)]
    files = [("files", (f"{i:06d}.png", data, "image/png")) for i, data in enumerate(samples)]
    assert client.post("/collections/scenes/images", files=files).status_code == 201
    return samples


def test_count_and_get_image_by_the_seeds_names(client):
    samples = fill_scenes(client)
    assert client.get("/countTable").json() == 8  # default: the TIRG collection
    assert client.get("/countTable", params={"table_name": "images"}).json() == 0
    assert client.get("/getImage", params={"img": "000003.png"}).content == samples[3]
    assert client.get("/getImage", params={"img": "css_test_000003.png"}).content == samples[3]


def test_get_similar_result_returns_image_urls_of_the_composed_search(client):
    samples = fill_scenes(client)
    response = client.post("/getSimilarResult", params={"Text": TEXT},
                           files={"Image": ("q.png", samples[2], "image/png")})
    assert response.status_code == 200, response.text
    urls = response.json()
    # Every stored scene but the query's own copy (composed search leaves out the uploaded bytes' copy).
    assert len(urls) == 7 and all(url.startswith("http://127.0.0.1:7000/getImage?img=") for url in urls)
    assert not any("img=000002.png" in url for url in urls)
    same = client.post("/search", data={"text": TEXT, "top_k": 8},
                       files={"image": ("q.png", samples[2], "image/png")}).json()["results"]
    names = [client.get(f"/images/{hit['id']}").json()["filename"] for hit in same]
    assert [url.split("img=")[1].split("&")[0] for url in urls] == names
    assert client.get(urls[0]).status_code == 200


def test_errors_have_proper_status_codes(client):
    samples = fill_scenes(client, 2)
    image = {"Image": ("q.png", samples[0], "image/png")}
    assert client.get("/countTable", params={"table_name": "nope"}).status_code == 404
    assert client.get("/getImage", params={"img": "999999.png"}).status_code == 404
    assert client.post("/getSimilarResult", files=image).status_code == 422  # no Text
    assert client.post("/getSimilarResult", params={"Text": TEXT}).status_code == 422  # no Image
    not_image = client.post("/getSimilarResult", params={"Text": TEXT},
                            files={"Image": ("q.txt", b"hello", "text/plain")})
    assert not_image.status_code == 415
    clip_table = client.post("/getSimilarResult", params={"Text": TEXT, "table_name": "images"}, files=image)
    assert clip_table.status_code == 200 and isinstance(clip_table.json(), list)  # a CLIP table composes too
