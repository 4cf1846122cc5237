from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from webserver.api.deps import ServicesDep
from webserver.api.schemas import Health, Readiness
from webserver.errors import DomainError
from webserver.version import project_version

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    """On the event loop itself: never queued behind model work in the thread pool."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, summary="Models loaded and both stores reachable",
            responses={503: {"model": Readiness}})
def readyz(services: ServicesDep):
    checks = {f"{kind}_encoder": f"ok ({encoder.encoder_id}, {encoder.precision.precision} on "
                                 f"{encoder.precision.hardware} via {encoder.runtime}; composes by {encoder.composing})"
              for kind, encoder in services.encoders.by_kind.items()}
    for name, ping in (("milvus", services.vectors.ping), ("metadata", services.metadata.ping)):
        try:
            ping()
            checks[name] = "ok"
        except DomainError as exc:
            checks[name] = exc.detail
    ready = all(value.startswith("ok") for value in checks.values())
    body = Readiness(status="ready" if ready else "unavailable", version=project_version(), checks=checks)
    return body if ready else JSONResponse(body.model_dump(), status_code=503)
