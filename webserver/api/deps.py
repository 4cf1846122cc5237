"""Dependencies shared by the routers."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from webserver.api.model_work import ModelWork
from webserver.api.observability import Metrics
from webserver.services.container import Services


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def get_model_work(request: Request) -> ModelWork:
    return request.app.state.model_work


ModelWorkDep = Annotated[ModelWork, Depends(get_model_work)]


def get_search_work(request: Request) -> ModelWork:
    return request.app.state.search_work


SearchWorkDep = Annotated[ModelWork, Depends(get_search_work)]


def image_url(image_id: int) -> str:
    return f"/images/{image_id}/file"
