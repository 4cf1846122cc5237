from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response

from webserver.api.deps import ServicesDep, image_url
from webserver.api.errors import error_responses
from webserver.api.params import CollectionPath, PageLimit, PageOffset
from webserver.api.schemas import (
    CollectionCreate,
    CollectionDetail,
    CollectionList,
    CollectionPublic,
    ImagePage,
    ImagePublic,
)
from webserver.api.security import READ, WRITE
from webserver.services.collections import CollectionStatus
from webserver.stores.metadata import ImageRecord

router = APIRouter(prefix="/collections", tags=["collections"])


def collection_fields(status: CollectionStatus) -> dict:
    return {**status.record.__dict__, "created": in_utc(status.record.created), "kind": status.kind,
            "servable": status.servable, "answers": status.answers}


def image_public(record: ImageRecord) -> ImagePublic:
    fields = {k: v for k, v in record.__dict__.items() if k not in {"meta", "path", "created"}}
    return ImagePublic(**fields, created=in_utc(record.created), metadata=record.meta, url=image_url(record.id))


def in_utc(stored: datetime) -> datetime:
    """The stores keep naive UTC times; the API says so."""
    return stored.replace(tzinfo=UTC) if stored.tzinfo is None else stored


@router.get("", response_model=CollectionList, summary="List collections", dependencies=READ,
            responses=error_responses(401, 503))
def list_collections(services: ServicesDep) -> CollectionList:
    records = services.collections.list_all()
    return CollectionList(items=[CollectionPublic(**collection_fields(services.collections.status(r)))
                                 for r in records], defaults=services.search.defaults_served())


@router.post("", response_model=CollectionPublic, status_code=201, summary="Create a collection",
             dependencies=WRITE, responses=error_responses(400, 401, 403, 409, 503))
def create_collection(body: CollectionCreate, services: ServicesDep) -> CollectionPublic:
    record = services.collections.create(body.name, body.encoder)
    return CollectionPublic(**collection_fields(services.collections.status(record)))


@router.get("/{name}", response_model=CollectionDetail, summary="Encoder, dimension and counts",
            dependencies=READ, responses=error_responses(401, 404, 503))
def get_collection(name: CollectionPath, services: ServicesDep) -> CollectionDetail:
    info = services.collections.describe(name)
    return CollectionDetail(**collection_fields(info.status), milvus_count=info.milvus_count,
                            metadata_count=info.metadata_count)


@router.delete("/{name}", status_code=204, summary="Delete a collection, its vectors and rows",
               dependencies=WRITE, responses=error_responses(401, 403, 404, 503))
def delete_collection(name: CollectionPath, services: ServicesDep) -> Response:
    services.collections.delete(name)
    return Response(status_code=204)


@router.get("/{name}/images", response_model=ImagePage, summary="A page of image metadata",
            dependencies=READ, responses=error_responses(401, 404, 503))
def list_images(name: CollectionPath, services: ServicesDep, limit: PageLimit = 50,
                offset: PageOffset = 0) -> ImagePage:
    records = services.images.list(name, limit=limit, offset=offset)
    total = services.metadata.count_images(name)
    return ImagePage(items=[image_public(r) for r in records], limit=limit, offset=offset, total=total)
