from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from webserver.api.deps import MetricsDep, SearchWorkDep, ServicesDep, image_url
from webserver.api.errors import error_responses
from webserver.api.params import CollectionForm, ComposerForm, ImageIdForm, OffsetForm, TopKForm
from webserver.api.schemas import SearchHitPublic, SearchResponse
from webserver.api.security import READ
from webserver.api.uploads import optional_upload, parse_json_object
from webserver.services.search import SearchQuery, SearchResult

router = APIRouter(tags=["search"])


@router.post("/search", response_model=SearchResponse, summary="Text, image or composed search",
             dependencies=READ, responses=error_responses(400, 401, 404, 409, 413, 415, 503))
async def search(
    services: ServicesDep,
    metrics: MetricsDep,
    work: SearchWorkDep,
    collection: CollectionForm = None,
    text: Annotated[str | None, Form(description="text query, or the modification for a composed query")] = None,
    image: Annotated[UploadFile | None, File(description="query image")] = None,
    image_id: ImageIdForm = None,
    top_k: TopKForm = 10,
    offset: OffsetForm = 0,
    filter: Annotated[str | None, Form(
        description='JSON object of metadata equalities, e.g. {"label": "dress"}')] = None,
    composer: ComposerForm = None,
) -> SearchResponse:
    def answer() -> SearchResult:
        query = SearchQuery(
            collection=collection or None, text=text if text and text.strip() else None,
            image=optional_upload(image, services.settings.MAX_UPLOAD_BYTES),
            image_id=image_id, top_k=top_k, offset=offset,
            filter=parse_json_object(filter, "filter"), composer=composer,
        )
        return services.search.search(query)

    result = await work.run(answer)
    metrics.observe_search(result.mode, result.stage_seconds)
    return SearchResponse(
        mode=result.mode, collection=result.collection, composer=result.composer,
        took_ms=round(result.took_ms, 2),
        results=[SearchHitPublic(id=hit.record.id, score=hit.score, caption=hit.record.caption,
                                 metadata=hit.record.meta, url=image_url(hit.record.id))
                 for hit in result.hits])
