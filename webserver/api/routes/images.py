from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile

from webserver.api.deps import ModelWorkDep, ServicesDep
from webserver.api.errors import error_responses
from webserver.api.params import CollectionPath, ImageIdPath
from webserver.api.routes.collections import image_public
from webserver.api.schemas import AddedItem, AddImagesResponse, ImagePublic
from webserver.api.security import READ, WRITE
from webserver.api.uploads import uploads_from_form
from webserver.services.images import AddedImage

router = APIRouter(tags=["images"])


@router.post("/collections/{name}/images", response_model=AddImagesResponse, status_code=201,
             summary="Add images (multipart)", dependencies=WRITE,
             responses=error_responses(400, 401, 403, 404, 409, 413, 415, 503))
async def add_images(
    name: CollectionPath,
    services: ServicesDep,
    work: ModelWorkDep,
    files: Annotated[list[UploadFile], File(description="one or more image files")],
    captions: Annotated[list[str] | None, Form(description="one caption per file, in order")] = None,
    metadata: Annotated[list[str] | None, Form(description="one JSON object per file, in order")] = None,
) -> AddImagesResponse:
    """All files are validated first: one bad file rejects the request and nothing is stored.
    Bytes already in the collection come back with their existing id and `duplicate: true`."""
    settings = services.settings

    def store() -> list[AddedImage]:
        uploads = uploads_from_form(files, captions, metadata, max_bytes=settings.MAX_UPLOAD_BYTES,
                                    max_files=settings.MAX_FILES_PER_REQUEST)
        return services.images.add(name, uploads)

    added = await work.run(store)
    return AddImagesResponse(items=[AddedItem(**item.__dict__) for item in added])


@router.get("/images/{image_id}", response_model=ImagePublic, summary="Image metadata", dependencies=READ,
            responses=error_responses(401, 404, 503))
def get_image(image_id: ImageIdPath, services: ServicesDep) -> ImagePublic:
    return image_public(services.images.get(image_id))


@router.get("/images/{image_id}/file", summary="The stored image bytes", dependencies=READ,
            responses={200: {"content": {"image/*": {}}}, **error_responses(401, 404, 503)},
            response_class=Response)
def get_image_file(image_id: ImageIdPath, services: ServicesDep) -> Response:
    data, content_type = services.images.read_file(image_id)
    return Response(content=data, media_type=content_type,
                    headers={"Cache-Control": "public, max-age=86400, immutable"})


@router.delete("/images/{image_id}", status_code=204, summary="Delete an image everywhere",
               dependencies=WRITE, responses=error_responses(401, 403, 404, 503))
def delete_image(image_id: ImageIdPath, services: ServicesDep) -> Response:
    services.images.delete(image_id)
    return Response(status_code=204)
