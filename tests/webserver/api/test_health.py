from tests.servers import free_port


def test_healthz_and_readyz_when_everything_is_up(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["milvus"] == "ok"


def test_readyz_names_the_version_and_each_encoders_precision_and_hardware(client):
    from tirg.hardware import detect_cpu_class
    from webserver.version import project_version

    ready = client.get("/readyz").json()
    assert ready["version"] == client.get("/openapi.json").json()["info"]["version"] == project_version()
    checks = ready["checks"]
    assert checks["clip_encoder"].endswith(f", fp32 on cpu/{detect_cpu_class()})")
    assert checks["tirg_encoder"].startswith("ok (tirg/")


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
