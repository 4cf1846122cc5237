"""/metrics scrapes (Prometheus text format) and counts per route template; requests carry an id into
the response header and every log line written while they run."""
import json
import logging

from prometheus_client.parser import text_string_to_metric_families

from tests.webserver.api.helpers import upload
from webserver.api.observability import JsonFormatter, RequestIdFilter


def samples(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_requests_and_search_stages_are_counted(client):
    upload(client, "images", 3)
    for _ in range(2):
        assert client.post("/search", data={"text": "a dress"}).status_code == 200
    assert client.get("/images/99999").status_code == 404
    found = samples(client)
    key = ("http_requests_total", frozenset({"method": "POST", "route": "/search", "status": "200"}.items()))
    assert found[key] == 2
    missing = ("http_requests_total", frozenset({"method": "GET", "route": "/images/{image_id}",
                                                 "status": "404"}.items()))
    assert found[missing] == 1
    for stage in ("encode", "milvus_search", "metadata_fetch"):
        count = ("search_stage_duration_seconds_count", frozenset({"stage": stage, "mode": "text"}.items()))
        assert found[count] == 2


def test_a_request_id_is_echoed_and_reaches_the_logs(client, caplog):
    handler_filter = RequestIdFilter()
    caplog.handler.addFilter(handler_filter)
    with caplog.at_level(logging.INFO, logger="webserver.access"):
        sent = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        made = client.get("/healthz")
        hostile = client.get("/healthz", headers={"X-Request-ID": "x" * 500})
    assert sent.headers["X-Request-ID"] == "abc-123"
    assert len(made.headers["X-Request-ID"]) == 16 and hostile.headers["X-Request-ID"] != "x" * 500
    records = [r for r in caplog.records if r.name == "webserver.access"]
    assert [r.request_id for r in records] == ["abc-123", made.headers["X-Request-ID"],
                                               hostile.headers["X-Request-ID"]]
    line = json.loads(JsonFormatter().format(records[0]))
    assert (line["request_id"], line["route"], line["status"]) == ("abc-123", "/healthz", 200)


def test_library_chatter_stays_out_of_the_log_and_warnings_do_not(capsys):
    import open_clip

    from webserver.api.observability import CHATTY_LOGGERS, configure_logging
    from webserver.encoders.clip import register_model_configs

    root = logging.getLogger()
    saved = root.handlers[:], root.level, {name: logging.getLogger(name).level for name in CHATTY_LOGGERS}
    try:
        configure_logging("text")
        register_model_configs()
        open_clip.get_tokenizer("css-clip")  # open_clip logs "Parsing tokenizer identifier" through the root logger
        logging.getLogger("faiss.loader").info("Could not load library with AVX2 support due to: ModuleNotFoundError")
        logging.getLogger("webserver.api.app").info("serving with css-clip")
        logging.warning("a warning from a library passes")
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)
    err = capsys.readouterr().err
    assert "serving with css-clip" in err and "a warning from a library passes" in err
    assert "tokenizer" not in err and "ModuleNotFoundError" not in err, err
