"""Path, query and form parameters with the rules the services enforce, stated in OpenAPI: an id or
offset out of range is a 422 at the edge (it reached SQL and Milvus as a 500), a collection name that
cannot exist is refused before any store is asked."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Form, Path, Query

from webserver.services.collections import NAME_PATTERN
from webserver.services.search import MAX_OFFSET, MAX_TOP_K
from webserver.stores.metadata import MAX_IMAGE_ID

# Ids and offsets stay below 2**53: exact in JavaScript and in any client that reads JSON numbers as
# doubles (the id sequence never gets there; an import asking for a larger id gets a new one).
LARGEST_ID = MAX_IMAGE_ID
NAME_RULE = NAME_PATTERN.pattern
NAME_WORDS = "a letter, then letters, digits or _ (64 at most); unique regardless of case"

ImageIdPath = Annotated[int, Path(ge=1, le=LARGEST_ID, description="an image id")]
CollectionPath = Annotated[str, Path(pattern=NAME_RULE, description=f"collection name: {NAME_WORDS}")]
PageLimit = Annotated[int, Query(ge=1, le=1000)]
PageOffset = Annotated[int, Query(ge=0, le=LARGEST_ID)]
CollectionForm = Annotated[str | None, Form(
    pattern=NAME_RULE,
    description="default: TIRG_TABLE for a composed query (image + text) when a TIRG model is loaded, "
                "MILVUS_TABLE otherwise")]
ImageIdForm = Annotated[int | None, Form(
    ge=1, le=LARGEST_ID, description="an indexed image as the query (excluded from results)")]
TopKForm = Annotated[int, Form(ge=1, le=MAX_TOP_K)]
ComposerForm = Annotated[Literal["sum", "trained"] | None, Form(
    description="a composed query on a CLIP collection: sum (zero-shot weighted sum of the image and text "
                "vectors) or trained (the server's combiner, CLIP_COMBINER_CHECKPOINT); default CLIP_COMPOSER. "
                "Not for TIRG collections, which compose with their own model")]
OffsetForm = Annotated[int, Form(ge=0, le=MAX_OFFSET)]
TableName = Annotated[str | None, Query(
    pattern=NAME_RULE, description="collection; default TIRG_TABLE (MILVUS_TABLE without TIRG)")]
