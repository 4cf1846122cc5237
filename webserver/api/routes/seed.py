"""Routes of the seed (the Milvus TIRG demo) for its old clients, with its names and response shapes,
answered by the same services: a trained checkpoint really loaded, and HTTP status codes on errors.

    GET  /countTable?table_name=            -> number of images in the collection
    GET  /getImage?img=000123.png           -> the image (the seed's css_test_000123.png also works)
    POST /getSimilarResult?Text=&table_name=  multipart `Image` -> ["http://host/getImage?img=...", ...]

`table_name` defaults to the TIRG collection (TIRG_TABLE) when a TIRG model is loaded.
"""
from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, File, Query, Response, UploadFile

from webserver.api.deps import MetricsDep, SearchWorkDep, ServicesDep
from webserver.api.errors import error_responses
from webserver.api.params import TableName
from webserver.api.security import READ, public_base
from webserver.api.uploads import optional_upload
from webserver.services.container import Services
from webserver.services.search import SearchQuery, SearchResult

router = APIRouter(tags=["seed-compatible"], dependencies=READ)

SEED_IMAGE_NAME = re.compile(r"^css_(?:train|test)_(\d{6}\.png)$")
SEED_TOP_K = 10


def seed_collection(services: Services, table_name: str | None) -> str:
    if table_name:
        return table_name
    return services.settings.TIRG_TABLE if services.encoders.tirg else services.settings.MILVUS_TABLE


@router.get("/countTable", response_model=int, summary="Seed: images in a collection",
            responses=error_responses(401, 404, 503))
def count_table(services: ServicesDep, table_name: TableName = None) -> int:
    collection = seed_collection(services, table_name)
    services.collections.get_record(collection)
    return services.metadata.count_images(collection)


@router.get("/getImage", name="seed_get_image", summary="Seed: an image by file name", response_class=Response,
            responses={200: {"content": {"image/*": {}}}, **error_responses(401, 404, 503)})
def get_image(services: ServicesDep, img: Annotated[str, Query(min_length=1, max_length=255)],
              table_name: TableName = None) -> Response:
    seed_name = SEED_IMAGE_NAME.match(img)
    names = [img, seed_name.group(1)] if seed_name else [img]
    record = services.images.find_by_filename(seed_collection(services, table_name), names)
    data, content_type = services.images.read_file(record.id)
    return Response(content=data, media_type=content_type)


@router.post("/getSimilarResult", response_model=list[str], summary="Seed: composed search (image + text)",
             responses=error_responses(400, 401, 404, 409, 413, 415, 503))
async def get_similar_result(
    services: ServicesDep,
    metrics: MetricsDep,
    work: SearchWorkDep,
    Text: Annotated[str, Query(min_length=1, description="the modification text")],  # noqa: N803 (seed's name)
    Image: Annotated[UploadFile, File(description="the reference image")],  # noqa: N803
    table_name: TableName = None,
) -> list[str]:
    def answer() -> tuple[str, SearchResult]:
        collection = seed_collection(services, table_name)
        query = SearchQuery(collection=collection, text=Text, top_k=SEED_TOP_K,
                            image=optional_upload(Image, services.settings.MAX_UPLOAD_BYTES))
        return collection, services.search.search(query)

    collection, result = await work.run(answer)
    metrics.observe_search(result.mode, result.stage_seconds)
    # The seed answered absolute URLs; they come from PUBLIC_URL or the configured host, never from the
    # request's Host header (a forged Host made every link point elsewhere).
    base = public_base(services.settings)
    return [f"{base}/getImage?{urlencode({'img': hit.record.filename, 'table_name': collection})}"
            for hit in result.hits]
