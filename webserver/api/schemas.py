"""Request and response schemas of the HTTP API (all routes document these in OpenAPI)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from webserver.api.params import NAME_RULE, NAME_WORDS


class ErrorResponse(BaseModel):
    detail: str = Field(description="what went wrong and what to do about it")


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    version: str = Field(description="the server's release (pyproject.toml)")
    checks: dict[str, str] = Field(description="'ok' or the reason, per dependency")


QueryMode = Literal["text", "image", "composed"]


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_RULE, examples=["fashion"], description=NAME_WORDS)
    encoder: Literal["clip", "tirg", "fused"] = Field(
        "clip", description="clip: text, image and composed queries; tirg: image and composed (image + text) "
                            "queries; fused: TIRG and the trained combiner in one vector, image and composed")


class CollectionPublic(BaseModel):
    name: str
    kind: Literal["clip", "tirg", "fused"] = Field(description="the kind of encoder that made its vectors")
    encoder_id: str = Field(description="the model that made this collection's vectors")
    dimension: int
    metric: str
    created: AwareDatetime
    servable: bool = Field(description="false when the loaded encoder differs: reindex to use it")
    answers: list[QueryMode] = Field(description="the query modes it answers while servable")


class CollectionDetail(CollectionPublic):
    milvus_count: int
    metadata_count: int


class CollectionList(BaseModel):
    items: list[CollectionPublic]
    defaults: dict[str, str] = Field(
        default_factory=dict,
        description="The collection a search that names none goes to, per query kind (text, image, composed), "
                    "for the kinds a loaded model answers.")


class ImagePublic(BaseModel):
    id: int
    collection: str
    sha256: str
    filename: str
    caption: str | None
    metadata: dict[str, Any]
    width: int
    height: int
    created: AwareDatetime
    url: str


class ImagePage(BaseModel):
    items: list[ImagePublic]
    limit: int
    offset: int
    total: int


class AddedItem(BaseModel):
    id: int
    sha256: str
    duplicate: bool = Field(description="true when these bytes were already in the collection")


class AddImagesResponse(BaseModel):
    items: list[AddedItem]


class SearchHitPublic(BaseModel):
    id: int
    score: float = Field(description="cosine similarity, higher is closer")
    caption: str | None
    metadata: dict[str, Any]
    url: str


class SearchResponse(BaseModel):
    mode: QueryMode
    collection: str
    composer: Literal["sum", "trained"] | None = Field(
        None, description="what composed a composed query on a CLIP collection; null otherwise")
    took_ms: float
    results: list[SearchHitPublic]
