"""The web page in a real browser: Playwright driving Debian's Chromium (headless) against the app
served by uvicorn on a local port. Skipped where Chromium or Playwright is missing, unless
REQUIRE_BROWSER=1 (CI), where that fails."""
from __future__ import annotations

import contextlib
import io
import os
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image

from tests.conftest import ROOT
from tests.images import sample_pngs
from tests.servers import free_port, wait_for_port
from tests.webserver.api.helpers import upload
from tirg.data import CSSDataset
from tirg.scenes.generate import generate
from webserver.api.app import create_app
from webserver.services.container import load_encoders

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]
TEXT = "make top-left red object blue"


def _missing_browser() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements.txt)"
    if not CHROMIUM.exists():
        return "Chromium is not installed (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _missing_browser()
    if reason:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@contextlib.contextmanager
def serve(app):
    """The base URL of `app` served by uvicorn in a thread, as `python main.py` serves it."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port(port, 60)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def served(make_settings, encoders):
    with serve(create_app(make_settings(), encoders)) as base:
        yield base


@pytest.fixture
def page(browser, served):
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


def fill(base: str, collection: str, count: int) -> list[int]:
    with httpx.Client(base_url=base) as client:
        response, _ = upload(client, collection, count)
        assert response.status_code == 201, response.text
        return [item["id"] for item in response.json()["items"]]


def wait_for_text(page, test_id: str, text: str) -> None:
    """A locator assertion: it runs under the page's Content-Security-Policy (no script-src 'unsafe-eval',
    which a wait_for_function expression needs)."""
    from playwright.sync_api import expect

    expect(page.get_by_test_id(test_id)).to_contain_text(text, timeout=10_000)


def search(page, base: str, query: str, collection: str | None = None) -> None:
    """Open the page (on a collection), type a query and press Search."""
    page.goto(base + ("/" if collection is None else f"/?collection={collection}"))
    page.get_by_test_id("text").fill(query)
    page.get_by_test_id("search").click()


def result_ids(page) -> list[int]:
    return [int(i) for i in page.locator("[data-testid=results] li").evaluate_all(
        "items => items.map(li => li.dataset.imageId)")]


def test_a_text_search_shows_a_grid_with_scores(page, served):
    base = served
    fill(base, "images", 12)
    search(page, base, "a dress")
    page.wait_for_selector("[data-testid=results] li")
    assert len(result_ids(page)) == 12
    assert "text search in images" in page.get_by_test_id("summary").inner_text()
    assert page.locator("[data-testid=results] li .score").first.inner_text().startswith("#1 · ")
    wait_for_text(page, "collection-info", "12 images")


def test_an_uploaded_image_finds_itself_first(page, served, tmp_path):
    base = served
    ids = fill(base, "images", 12)
    query = tmp_path / "query.png"
    query.write_bytes(sample_pngs(12)[5][0])
    page.goto(base + "/")
    page.get_by_test_id("reference-file").set_input_files(str(query))
    page.get_by_test_id("search").click()
    page.wait_for_selector("[data-testid=results] li")
    assert result_ids(page)[0] == ids[5]
    assert page.locator("[data-testid=results] li .score").first.inner_text() == "#1 · 1.000"


def test_a_clicked_result_plus_a_change_runs_the_composed_search(page, served, tirg_encoder):
    base = served
    ids = fill(base, "scenes", 12)
    page.goto(base + "/?collection=scenes")
    page.get_by_test_id("reference-file").set_input_files(
        files=[{"name": "q.png", "mimeType": "image/png", "buffer": sample_pngs(12)[3][0]}])
    page.get_by_test_id("search").click()  # image search in the TIRG collection
    page.wait_for_selector("[data-testid=results] li")
    page.locator(f"[data-testid=results] li[data-image-id='{ids[3]}']").click()
    page.get_by_test_id("text").fill(TEXT)
    page.get_by_test_id("search").click()
    wait_for_text(page, "summary", "change")
    shown = result_ids(page)
    assert ids[3] not in shown and len(shown) == 11  # the reference is excluded from its own results

    # The page shows what the model ranks first for (reference, text), computed here without the server.
    images = [Image.open(io.BytesIO(data)) for data, _ in sample_pngs(12)]
    query = tirg_encoder.compose([images[3]], [TEXT])[0]
    scores = tirg_encoder.encode_images(images) @ query
    scores[3] = -np.inf
    assert shown[0] == ids[int(np.argmax(scores))]


def test_a_refused_query_shows_the_servers_reason(page, served):
    base = served
    fill(base, "images", 3)
    search(page, base, "a dress " * 200)  # over the server's 1,000 characters
    page.wait_for_selector("[data-testid=status].error")
    assert "over 1000 characters" in page.get_by_test_id("status").inner_text()


def test_the_page_opens_on_the_default_collection_and_follows_the_query_kind(page, served):
    """A TIRG collection that sorts first does not become the page's start (a text search there would be a
    400); a composed query stays in the CLIP collection (which composes by its composer); a text query asked
    of a TIRG collection goes to the default text collection, and the page says so."""
    base = served
    with httpx.Client(base_url=base) as client:
        assert client.post("/collections", json={"name": "aaa_scenes", "encoder": "tirg"}).status_code == 201
    ids = fill(base, "images", 6)
    fill(base, "scenes", 6)
    page.goto(base + "/")
    wait_for_text(page, "collection-info", "6 images")
    assert page.get_by_test_id("collection").input_value() == "images"
    guide = page.get_by_test_id("collections-guide").inner_text()
    assert "text: images" in guide and "image + change: aaa_scenes, images, scenes" in guide, guide

    page.get_by_test_id("text").fill("a dress")
    page.get_by_test_id("search").click()
    page.wait_for_selector(f"[data-testid=results] li[data-image-id='{ids[2]}']")
    page.locator(f"[data-testid=results] li[data-image-id='{ids[2]}']").click()
    page.get_by_test_id("text").fill(TEXT)
    page.get_by_test_id("search").click()
    wait_for_text(page, "summary", "image + change search in images (sum composer)")
    assert len(result_ids(page)) == 5 and ids[2] not in result_ids(page)  # the reference is left out

    page.get_by_test_id("collection").select_option("scenes")
    page.get_by_test_id("search").click()
    wait_for_text(page, "summary", "image + change search in scenes ·")
    page.locator("#reference-clear").click()
    page.get_by_test_id("search").click()
    wait_for_text(page, "summary", "text search in images")
    assert "scenes does not answer text" in page.get_by_test_id("status").inner_text()


def test_the_drop_zone_has_no_broken_image_and_a_large_preview(page, served):
    base = served
    missing = []
    page.on("response", lambda response: missing.append(response.url) if response.status >= 400 else None)
    page.goto(base + "/")
    wait_for_text(page, "collection-info", "images")
    assert page.locator("#reference-preview").is_hidden()  # nothing chosen: no broken-image icon
    page.get_by_test_id("reference-file").set_input_files(
        files=[{"name": "q.png", "mimeType": "image/png", "buffer": sample_pngs(1)[0][0]}])  # 28 x 28 px
    box = page.locator("#reference-preview").bounding_box()
    assert box is not None and box["width"] >= 160 and box["height"] >= 160, box
    page.wait_for_timeout(300)  # the favicon request is made after load
    assert missing == [], missing


def test_images_added_from_the_page_are_counted(page, served, tmp_path):
    base = served
    paths = []
    for i, (data, _) in enumerate(sample_pngs(3)):
        paths.append(tmp_path / f"{i}.png")
        paths[-1].write_bytes(data)
    page.goto(base + "/")
    page.locator("details summary").click()
    page.get_by_test_id("add-files").set_input_files([str(p) for p in paths])
    page.get_by_test_id("add").click()
    wait_for_text(page, "status", "Added")
    assert page.get_by_test_id("status").inner_text() == "Added 3, already there 0."
    wait_for_text(page, "collection-info", "3 images")


@pytest.fixture(scope="module")
def demo_scenes(tmp_path_factory):
    """Scenes as the demo makes them (the generator's test split, 3d, 64 px)."""
    root = tmp_path_factory.mktemp("demo") / "scenes"
    generate(root, train_images=0, test_images=200, renderer="3d", image_size=64, seed=0, workers=1)
    return root


@pytest.fixture
def page_on_shipped_models(browser, make_settings):
    """A page served with the models shipped in models/ (those the demo serves)."""
    settings = make_settings(CLIP_MODEL="css-clip", CLIP_PRETRAINED=str(ROOT / "models" / "css-clip.pt"),
                             CLIP_COMBINER_CHECKPOINT=ROOT / "models" / "css-clip-combiner.pt",
                             TIRG_CHECKPOINT=ROOT / "models" / "tirg-css.pt")
    with serve(create_app(settings, load_encoders(settings))) as base:
        context = browser.new_context()
        yield context.new_page(), base
        context.close()


@pytest.mark.parametrize("collection, summary", [("scenes", "image + change search in scenes ·"),
                                                 ("images", "image + change search in images (trained composer)")])
def test_a_clicked_scene_plus_a_change_finds_the_expected_target_in_the_top_5(page_on_shipped_models,
                                                                            demo_scenes, collection, summary):
    """With the shipped models, on the TIRG collection and on the CLIP one (its trained combiner)."""
    page, base = page_on_shipped_models
    files = sorted((demo_scenes / "images").glob("css_test_*.png"))
    with httpx.Client(base_url=base, timeout=120) as client:
        response = client.post(f"/collections/{collection}/images",
                               files=[("files", (f.name, f.read_bytes(), "image/png")) for f in files])
        assert response.status_code == 201, response.text
        ids = [item["id"] for item in response.json()["items"]]
    split = CSSDataset(demo_scenes, "test", load_images=False)
    query = split.queries[0]  # the first query of the split, not a picked one

    page.goto(base + f"/?collection={collection}")
    page.get_by_test_id("reference-file").set_input_files(str(files[query.source]))
    page.get_by_test_id("search").click()  # image search: the scene itself comes first
    page.wait_for_selector(f"[data-testid=results] li[data-image-id='{ids[query.source]}']")
    page.locator(f"[data-testid=results] li[data-image-id='{ids[query.source]}']").click()
    page.get_by_test_id("text").fill(query.text)
    page.get_by_test_id("search").click()
    wait_for_text(page, "summary", summary)
    scene_of = {image_id: index for index, image_id in enumerate(ids)}
    top_labels = [split.labels[scene_of[image_id]] for image_id in result_ids(page)[:5]]
    assert split.labels[query.target] in top_labels, (query, top_labels)


def test_the_key_field_unlocks_reads_uploads_and_deletes(browser, make_settings, encoders, tmp_path):
    """With API_KEYS and READ_API_KEYS set, the page asks for a key, keeps it in localStorage across
    reloads, and sends it with searches, image reads, uploads and deletes."""
    key = "page-key-0123456789"
    with serve(create_app(make_settings(API_KEYS=key, READ_API_KEYS="reader-key"), encoders)) as base:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
            response, _ = upload(client, "images", 4)
            assert response.status_code == 201
        context = browser.new_context()
        page = context.new_page()
        page.goto(base + "/")
        page.wait_for_selector("[data-testid=status].error")
        assert "API key" in page.get_by_test_id("status").inner_text()

        page.get_by_test_id("api-key").fill(key)
        page.get_by_test_id("api-key").dispatch_event("change")
        wait_for_text(page, "collection-info", "4 images")
        page.reload()  # the key survives in localStorage
        search(page, base, "a dress")
        page.wait_for_selector("[data-testid=results] li img[src^='blob:']")  # image bytes read with the key
        first = result_ids(page)[0]

        page.once("dialog", lambda dialog: dialog.accept())
        page.locator(f"[data-testid=results] li[data-image-id='{first}'] [data-testid=delete]").click()
        wait_for_text(page, "status", f"Deleted image {first}")
        wait_for_text(page, "collection-info", "3 images")

        path = tmp_path / "new.png"
        path.write_bytes(sample_pngs(5)[4][0])
        page.locator("details summary").click()
        page.get_by_test_id("add-files").set_input_files(str(path))
        page.get_by_test_id("add").click()
        wait_for_text(page, "status", "Added 1")
        context.close()


@pytest.mark.parametrize("path, operation", [("/docs", ".opblock-summary-path"), ("/redoc", "[data-section-id]")])
def test_the_api_docs_work_offline(page, served, path, operation):
    """Swagger UI and ReDoc load their scripts from this server (before: a CDN, so /docs was blank
    offline). Every request to another host is refused here, as it would fail offline; only ReDoc's
    "powered by" logo comes from elsewhere, an image whose absence changes nothing."""
    base = served
    elsewhere: list[tuple[str, str]] = []

    def only_this_server(route):
        if route.request.url.startswith(base):
            route.continue_()
        else:
            elsewhere.append((route.request.resource_type, route.request.url))
            route.abort()

    page.route("**/*", only_this_server)
    page.goto(base + path)
    page.wait_for_selector(operation, timeout=20_000)
    assert "/search" in page.content()
    assert [url for kind, url in elsewhere if kind != "image"] == [], elsewhere
