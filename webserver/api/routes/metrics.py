from __future__ import annotations

from fastapi import APIRouter, Response

from webserver.api.deps import MetricsDep

router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Prometheus metrics: requests and latency per route, search stages",
            response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(metrics: MetricsDep) -> Response:
    return metrics.exposition()
