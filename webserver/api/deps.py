"""Dependencies shared by the routers."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from webserver.services.container import Services


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def image_url(image_id: int) -> str:
    return f"/images/{image_id}/file"
