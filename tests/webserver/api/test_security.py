"""Access: API keys for writes and reads, a safe default host, the Origin of browser writes, links that
never come from the Host header, security headers, and EXIF orientation."""
import io
import logging
import subprocess
import sys

import pytest
from PIL import Image

from config import Settings
from tests.conftest import ROOT
from tests.images import sample_pngs
from tests.webserver.api.helpers import upload

KEY, READER = "write-key-0123456789", "read-key-0123456789"
GOOD = sample_pngs(1)[0][0]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed(make_module_client):
    return make_module_client(API_KEYS=f"other-key, {KEY}", READ_API_KEYS=READER)


@pytest.mark.parametrize("method, path, kwargs", [
    ("post", "/collections", {"json": {"name": "fresh"}}),
    ("delete", "/collections/images", {}),
    ("post", "/collections/images/images", {"files": [("files", ("a.png", GOOD, "image/png"))]}),
    ("delete", "/images/1", {}),
])
def test_every_write_needs_a_write_key(keyed, method, path, kwargs, caplog):
    with caplog.at_level(logging.DEBUG):
        for headers in ({}, bearer("wrong-key"), bearer(READER)):
            response = getattr(keyed, method)(path, headers=headers, **kwargs)
            assert response.status_code == 401, response.text
            assert "API_KEYS" in response.json()["detail"] and response.headers["www-authenticate"] == "Bearer"
    assert "wrong-key" not in caplog.text and KEY not in caplog.text  # keys are never logged
    assert keyed.get("/collections/images", headers=bearer(KEY)).json()["metadata_count"] == 0


def test_a_write_key_writes_and_reads(keyed):
    response = keyed.post("/collections/images/images", headers=bearer(KEY),
                          files=[("files", ("a.png", GOOD, "image/png"))])
    assert response.status_code == 201, response.text
    image_id = response.json()["items"][0]["id"]
    assert keyed.get(f"/images/{image_id}/file", headers=bearer(KEY)).content == GOOD
    assert keyed.delete(f"/images/{image_id}", headers=bearer(KEY)).status_code == 204


@pytest.mark.parametrize("method, path, kwargs", [
    ("get", "/collections", {}),
    ("get", "/collections/images", {}),
    ("get", "/collections/images/images", {}),
    ("get", "/images/1", {}),
    ("get", "/images/1/file", {}),
    ("post", "/search", {"data": {"text": "a bag"}}),
    ("get", "/countTable", {"params": {"table_name": "images"}}),
])
def test_reads_need_a_read_key_when_read_keys_are_set(keyed, method, path, kwargs):
    assert getattr(keyed, method)(path, **kwargs).status_code == 401
    assert getattr(keyed, method)(path, headers=bearer(READER), **kwargs).status_code in (200, 404)
    assert keyed.get("/healthz").status_code == 200  # probes stay open


def test_openapi_names_the_key_only_where_one_is_set(keyed, client):
    keyed_schema = keyed.get("/openapi.json").json()
    assert keyed_schema["paths"]["/collections"]["post"]["security"] == [{"write_key": []}]
    assert keyed_schema["paths"]["/search"]["post"]["security"] == [{"read_key": []}]
    open_schema = client.get("/openapi.json").json()
    assert "security" not in open_schema["paths"]["/collections"]["post"]
    assert "securitySchemes" not in open_schema.get("components", {})


@pytest.mark.parametrize("values, refused", [
    ({"HOST": "0.0.0.0"}, True),
    ({"HOST": "192.168.1.20"}, True),
    ({"HOST": "0.0.0.0", "API_KEYS": KEY}, False),
    ({"HOST": "0.0.0.0", "ALLOW_ANONYMOUS_WRITES": True}, False),
    ({}, False),  # the default host is loopback
    ({"HOST": "localhost"}, False),
    ({"HOST": "::1"}, False),
])
def test_a_reachable_host_without_keys_refuses_to_start(values, refused):
    assert (Settings(_env_file=None, **values).exposure_refusal() is not None) is refused


def test_main_refuses_at_once_and_says_how_to_set_a_key(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "main.py")], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, env={"PATH": "/usr/bin:/bin", "HOST": "0.0.0.0",
                                              "DATA_DIR": str(tmp_path)})
    assert result.returncode == 2 and "API_KEYS=" in result.stderr and "ALLOW_ANONYMOUS_WRITES" in result.stderr


@pytest.mark.parametrize("headers, status", [
    ({"Origin": "https://evil.example"}, 403),  # a page on any site used to add images with a form post
    ({"Origin": "null"}, 403),
    ({"Sec-Fetch-Site": "cross-site"}, 403),
    ({"Origin": "http://testserver"}, 201),  # the server's own page
    ({"Origin": "https://app.example"}, 201),  # listed in CORS_ORIGINS
    ({}, 201),  # curl and scripts send no Origin
])
def test_writes_from_other_sites_pages_are_refused(make_client, headers, status):
    client = make_client(CORS_ORIGINS="https://app.example")
    response = client.post("/collections/images/images", headers=headers,
                           files=[("files", ("a.png", GOOD, "image/png"))])
    assert response.status_code == status, response.text
    if status == 403:
        assert client.get("/collections/images").json()["metadata_count"] == 0


def test_cors_lets_listed_origins_call_the_api(make_client):
    client = make_client(CORS_ORIGINS="https://app.example")
    allowed = client.options("/search", headers={"Origin": "https://app.example",
                                                 "Access-Control-Request-Method": "POST"})
    assert allowed.headers.get("access-control-allow-origin") == "https://app.example"
    other = client.get("/collections", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("settings, prefix", [
    ({"PUBLIC_URL": "https://images.example.com/"}, "https://images.example.com/getImage?"),
    ({"HOST": "127.0.0.1", "PORT": 7123}, "http://127.0.0.1:7123/getImage?"),
])
def test_seed_links_never_follow_the_host_header(make_client, settings, prefix):
    client = make_client(**settings)
    upload(client, "scenes", 3)
    links = client.post("/getSimilarResult", params={"Text": "make it blue"},
                        files={"Image": ("q.png", GOOD, "image/png")}, headers={"Host": "evil.example.com"})
    assert links.status_code == 200 and links.json(), links.text
    assert all(link.startswith(prefix) and "evil" not in link for link in links.json())


def test_security_headers(client):
    page, api = client.get("/"), client.get("/healthz")
    for response in (page, api):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def sideways_jpeg() -> bytes:
    """A 40x20 JPEG whose EXIF says: turn me 90 degrees (as phones store portrait photos)."""
    image = Image.new("RGB", (40, 20), (200, 30, 30))
    exif = image.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to view
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    return buffer.getvalue()


def test_images_are_encoded_upright_by_their_exif_orientation(client):
    response = client.post("/collections/images/images", files=[("files", ("p.jpg", sideways_jpeg(), "image/jpeg"))])
    record = client.get(f"/images/{response.json()['items'][0]['id']}").json()
    assert (record["width"], record["height"]) == (20, 40)
