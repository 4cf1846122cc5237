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
    text_weight = client.app.state.services.encoders.clip.composers.sum_text_weight
    assert checks["clip_encoder"].endswith(f", fp32 on cpu/{detect_cpu_class()} via onnxruntime; composes by sum "
                                           f"(text weight {text_weight:g}))")
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


def test_healthz_and_reads_answer_while_every_upload_waits_on_the_model(make_client, monkeypatch):
    """Uploads queue on the model executor (MODEL_WORKERS), not in the request thread pool (40 threads),
    and /healthz runs on the event loop: neither waits behind them. The encoder is held shut while the
    probes run, so this checks order, not timing: before (sync routes in the 40-thread request pool) 40
    uploads held every request thread and /healthz did not answer until the encoder was let go."""
    client = make_client(MODEL_WORKERS=1)
    encoders = client.app.state.services.encoders
    gate, entered = threading.Event(), threading.Event()
    for encoder in {id(e): e for e in (encoders.clip, encoders.tirg) if e is not None}.values():
        def held(images, _encode=encoder.encode_images):
            entered.set()
            assert gate.wait(timeout=120), "the test never let the encoder go"
            return _encode(images)
        monkeypatch.setattr(encoder, "encode_images", held)
    batches = [[("files", (f"{k}-{i}.png", data, "image/png")) for i, (data, _) in enumerate(sample_pngs(2, 2 * k))]
               for k in range(48)]  # more uploads than the request pool has threads
    statuses: list[int] = []
    uploads = [threading.Thread(target=lambda b=b: statuses.append(
        client.post("/collections/images/images", files=b).status_code)) for b in batches]
    try:
        for thread in uploads:
            thread.start()
        assert entered.wait(timeout=60), "no upload reached the encoder"
        time.sleep(0.5)  # let the rest of the uploads arrive and queue
        answers: dict[str, int] = {}
        probes = [threading.Thread(target=lambda path=path: answers.__setitem__(path, client.get(path).status_code))
                  for path in ("/healthz", "/collections")]
        for probe in probes:
            probe.start()
            probe.join(timeout=30)
        assert not gate.is_set() and all(thread.is_alive() for thread in uploads)
        assert answers == {"/healthz": 200, "/collections": 200}, answers
    finally:
        gate.set()
        for thread in uploads:
            thread.join(timeout=120)
    assert statuses == [201] * len(batches)
