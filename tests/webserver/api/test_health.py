import statistics
import threading
import time

from tests.images import sample_pngs
from tests.servers import free_port


def test_healthz_and_readyz_when_everything_is_up(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["milvus"] == "ok"


def test_readyz_names_the_version_and_each_encoders_precision_hardware_and_composer(client):
    from tirg.hardware import detect_cpu_class
    from webserver.version import project_version

    ready = client.get("/readyz").json()
    assert ready["version"] == client.get("/openapi.json").json()["info"]["version"] == project_version()
    checks = ready["checks"]
    assert checks["clip_encoder"].endswith(f", fp32 on cpu/{detect_cpu_class()}; composes by sum (text weight "
                                           f"{client.app.state.services.encoders.clip.composers.sum_text_weight:g}))")
    assert checks["tirg_encoder"].startswith("ok (tirg/") and checks["tirg_encoder"].endswith("its TIRG model)")


def test_readyz_is_503_with_the_reason_when_stores_are_down(make_client):
    client = make_client(MILVUS_HOST="127.0.0.1", MILVUS_PORT=free_port(), MILVUS_TIMEOUT_S=2,
                         MYSQL_HOST="127.0.0.1", MYSQL_PORT=free_port())
    ready = client.get("/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert "Milvus" in checks["milvus"] and "metadata database" in checks["metadata"]
    assert client.get("/healthz").status_code == 200


def test_requests_get_503_not_500_while_a_store_is_down(make_client):
    client = make_client(MILVUS_HOST="127.0.0.1", MILVUS_PORT=free_port(), MILVUS_TIMEOUT_S=2)
    response = client.post("/collections", json={"name": "other"})
    assert response.status_code == 503 and "Milvus" in response.json()["detail"]
    # the default collection, not made at start while Milvus was down: 503, not "no such collection" (404)
    assert client.post("/search", data={"text": "x"}).status_code == 503


def test_openapi_documents_every_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ["/healthz", "/readyz", "/collections", "/collections/{name}", "/collections/{name}/images",
                 "/images/{image_id}", "/images/{image_id}/file", "/search"]:
        assert path in paths
    assert client.get("/docs").status_code == 200


def test_healthz_answers_at_once_while_uploads_are_being_encoded(make_client):
    """Uploads queue on the model executor (MODEL_WORKERS), not in the request thread pool (40 threads),
    and /healthz runs on the event loop: it does not wait behind them."""
    client = make_client(MODEL_WORKERS=1)
    batches = [[("files", (f"{k}-{i}.png", data, "image/png")) for i, (data, _) in enumerate(sample_pngs(40, 40 * k))]
               for k in range(48)]  # more uploads than the request pool has threads
    statuses: list[int] = []
    uploads = [threading.Thread(target=lambda b=b: statuses.append(
        client.post("/collections/images/images", files=b).status_code)) for b in batches]
    for thread in uploads:
        thread.start()
    time.sleep(0.3)
    waits = []
    for _ in range(5):
        started = time.perf_counter()
        assert client.get("/healthz").status_code == 200
        waits.append(time.perf_counter() - started)
        time.sleep(0.05)
    busy = sum(thread.is_alive() for thread in uploads)
    for thread in uploads:
        thread.join(timeout=120)
    assert busy > 0, "the uploads finished before /healthz was asked: nothing was measured"
    assert statuses == [201] * len(batches)
    # Before (sync routes in the 40-thread request pool) the first probe waited 0.76 s here.
    assert statistics.median(waits) < 0.1 and max(waits) < 0.25, waits
