"""Server settings: one pydantic-settings class, read from environment variables and `.env`.

Nothing here runs at import time; callers build `Settings()` and pass it into constructors.
The names keep the seed's (MILVUS_HOST, MYSQL_HOST, ...). There is deliberately no MILVUS_URI
setting: pymilvus reads that environment variable itself at import time and fails on a file path.
"""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Vectors: a Milvus server when MILVUS_HOST is set, an embedded Milvus Lite file otherwise.
    MILVUS_HOST: str | None = None
    MILVUS_PORT: int = 19530
    MILVUS_TOKEN: str | None = None
    MILVUS_TABLE: str = Field("images", description="default (CLIP) collection, created at startup")
    TIRG_TABLE: str = Field("scenes", description="default TIRG collection, created at startup when "
                                                  "TIRG_CHECKPOINT is set; composed queries go here by default")
    FUSED_TABLE: str = Field("fused", description="default fused collection (TIRG + the trained combiner), "
                                                   "created at startup when FUSED_TIRG_WEIGHT is set")
    MILVUS_INDEX_TYPE: str | None = Field(None, description="index of new collections: HNSW, IVF_FLAT, FLAT, "
                                                        "AUTOINDEX; default AUTOINDEX on Lite, HNSW on a server")
    MILVUS_HNSW_M: int = Field(16, ge=4, le=64, description="HNSW graph degree of new collections")
    MILVUS_HNSW_EF_CONSTRUCTION: int = Field(200, ge=8, le=2048, description="HNSW build-time candidates")
    MILVUS_SEARCH_EF: int = Field(64, ge=1, le=32768, description="HNSW search-time candidates (at least the "
                                                                  "result depth); recall against latency")
    MILVUS_IVF_NLIST: int = Field(1024, ge=1, le=65536, description="IVF cells of new collections")
    MILVUS_IVF_NPROBE: int = Field(16, ge=1, le=65536, description="IVF cells scanned per search")
    MILVUS_TIMEOUT_S: float = 10.0
    MILVUS_LITE_MEMORY_SEARCH: bool = Field(
        True, description="Milvus Lite only: search a copy of each collection kept in this process's memory "
                          "(exact, ~10 ms at 100k x 512) instead of Lite's own search (~550 ms at 100k); costs "
                          "the collection's vectors once more in RAM (4 bytes x dimension per row)")

    # Metadata: MySQL when MYSQL_HOST is set, an embedded SQLite file otherwise.
    MYSQL_HOST: str | None = None
    MYSQL_PORT: int = 3306
    MYSQL_USER: str = "root"
    MYSQL_PWD: str = ""
    MYSQL_DB: str = "image_retrieval"

    MIGRATE_ON_START: bool = Field(
        False, description="upgrade an older MySQL schema at start (the embedded SQLite always upgrades, "
                           "after copying its file to DATA_DIR/backups)")

    DATA_DIR: Path = Path("./data")
    DEVICE: Literal["auto", "cpu", "cuda"] = "auto"
    CLIP_MODEL: str = "ViT-B-32"
    CLIP_PRETRAINED: str = Field("openai", description="open_clip tag (needs network) or local checkpoint")
    CLIP_PRECISION: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 where the hardware computes it natively (AVX-512 BF16, AMX, CUDA), "
                            "else fp32; bf16 where it would be emulated runs fp32 with a warning")
    CLIP_RUNTIME: Literal["auto", "torch", "onnx"] = Field(
        "auto", description="what runs the CLIP towers: onnx (ONNX Runtime; fp32 on a CPU, 1.6-3x faster there "
                            "than torch, docs/benchmarks.md), torch, or auto: onnx where fp32 runs on a CPU, "
                            "torch where bf16 or CUDA does")
    ONNX_CACHE: Path = Field(
        Path("~/.cache/composed-retrieval/onnx"),
        description="where CLIP_RUNTIME / TIRG_RUNTIME onnx keep the models they export (once per weights: "
                    "~45 s for ViT-B-32)")
    CLIP_COMPOSER: Literal["auto", "sum", "trained"] = Field(
        "auto", description="how a CLIP collection answers composed (image + text) queries: sum, the zero-shot "
                            "weighted sum; trained, the combiner of CLIP_COMBINER_CHECKPOINT; auto: trained where "
                            "one is loaded. A request may pick one with `composer`")
    CLIP_SUM_TEXT_WEIGHT: float = Field(
        0.4, ge=0, le=1, description="the text's weight in the zero-shot sum (0: the image alone, 1: the text "
                                     "alone); default measured on css-clip, docs/results.md")
    CLIP_COMBINER_CHECKPOINT: Path | None = Field(
        None, description="a combiner trained for the loaded CLIP weights (python -m tirg --model=clip_combiner; "
                          "the demo's is models/css-clip-combiner.pt)")
    TIRG_PRECISION: Literal["auto", "fp32", "bf16"] = "fp32"
    FUSED_TIRG_WEIGHT: float | None = Field(
        None, gt=0, lt=1, description="load the fused encoder (TIRG and the trained CLIP combiner in one vector, "
                                      "ranked by w * TIRG + (1 - w) * combiner): TIRG's weight w; needs "
                                      "TIRG_CHECKPOINT and CLIP_COMBINER_CHECKPOINT. 0.5 was chosen on the "
                                      "scenes' training split (docs/results.md)")
    TIRG_RUNTIME: Literal["auto", "torch", "onnx"] = Field(
        "auto", description="what runs the TIRG image encoder (the same choice as CLIP_RUNTIME; its text LSTM "
                            "and the composition stay in torch)")
    CPU_CLASS: Literal["auto", "amx", "avx512_bf16", "avx512", "avx2", "baseline"] = Field(
        "auto", description="treat the CPU as this class when choosing precisions (auto: detect)")
    ENCODE_BATCH_SIZE: int = Field(32, ge=1, le=1024)
    TIRG_CHECKPOINT: Path | None = Field(
        None, description="a tirg checkpoint (python -m tirg ... --export DIR writes DIR/tirg.pt): enables "
                          "TIRG collections, which answer image and composed (image + text) queries")

    HOST: str = Field("127.0.0.1", description="listen address; a non-loopback one needs API_KEYS (or "
                                              "ALLOW_ANONYMOUS_WRITES=1)")
    PORT: int = 7000
    PUBLIC_URL: str | None = Field(None, description="the address clients reach the server at "
                                                     "(https://images.example.com); absolute links use it")
    API_KEYS: SecretStr | None = Field(None, description="comma-separated keys; when set, every request that "
                                                         "changes state needs `Authorization: Bearer <key>`")
    READ_API_KEYS: SecretStr | None = Field(None, description="comma-separated keys; when set, reads and "
                                                              "searches need one of these (or a write key)")
    ALLOW_ANONYMOUS_WRITES: bool = Field(False, description="serve a non-loopback HOST without API_KEYS")
    CORS_ORIGINS: str = Field("", description="comma-separated origins whose pages may call the API "
                                              "(https://app.example.com); none by default")
    LOG_FORMAT: Literal["json", "text"] = Field("json", description="json: one object per line, with request_id")

    MAX_UPLOAD_BYTES: int = Field(20 * 1024 * 1024, ge=1)
    MAX_IMAGE_PIXELS: int = Field(40_000_000, ge=1)
    MAX_FILES_PER_REQUEST: int = Field(256, ge=1)
    MAX_REQUEST_BYTES: int = Field(100 * 1024 * 1024, ge=1, description="any request body, checked before "
                                                                       "and while it is read")
    MAX_JSON_BYTES: int = Field(1024 * 1024, ge=1, description="a JSON request body")
    MAX_REQUEST_PIXELS: int = Field(200_000_000, ge=1, description="all images of one request together, "
                                                                   "checked from their headers before any decode")
    MODEL_WORKERS: int = Field(2, ge=1, le=64, description="threads that decode, encode and compose for "
                                                           "uploads; more uploads queue for them")
    SEARCH_WORKERS: int = Field(16, ge=1, le=256, description="searches in flight at once; their encodes are "
                                                              "batched (QUERY_BATCH_*), more searches queue")
    QUERY_BATCH_WINDOW_MS: float = Field(2.0, ge=0, le=100, description="how long the first query of a batch "
                                                                        "waits for others to join it")
    QUERY_BATCH_MAX: int = Field(32, ge=1, le=1024, description="queries encoded in one forward pass at most "
                                                                "(1: each query alone)")

    @field_validator("MILVUS_HOST", "MILVUS_TOKEN", "MILVUS_INDEX_TYPE", "MYSQL_HOST", "TIRG_CHECKPOINT",
                     "CLIP_COMBINER_CHECKPOINT",
                     "PUBLIC_URL", "API_KEYS", "READ_API_KEYS", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        """`TIRG_CHECKPOINT=` (as .env templates and compose files write it) is unset, not Path('.')."""
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def write_keys(self) -> list[str]:
        return _split(self.API_KEYS.get_secret_value()) if self.API_KEYS else []

    @property
    def read_keys(self) -> list[str]:
        return _split(self.READ_API_KEYS.get_secret_value()) if self.READ_API_KEYS else []

    @property
    def cors_origins(self) -> list[str]:
        return [origin.rstrip("/") for origin in _split(self.CORS_ORIGINS)]

    def exposure_refusal(self) -> str | None:
        """Why the server must not start as configured: anyone who can reach a non-loopback address
        could add and delete data without a key. None when it may."""
        if self.write_keys or self.ALLOW_ANONYMOUS_WRITES or is_loopback(self.HOST):
            return None
        return (f"HOST={self.HOST} is reachable from other machines, and no API_KEYS are set: anyone could add "
                "and delete images. Set API_KEYS=<a long random key> (e.g. `python -c \"import secrets; "
                "print(secrets.token_urlsafe(32))\"`) and send `Authorization: Bearer <key>` with writes; "
                "or serve on HOST=127.0.0.1; or set ALLOW_ANONYMOUS_WRITES=1 to accept the risk.")

    @property
    def milvus_uri(self) -> str:
        if self.MILVUS_HOST:
            host = self.MILVUS_HOST
            return host if "://" in host else f"http://{host}:{self.MILVUS_PORT}"
        return str(self.DATA_DIR / "milvus.db")

    @property
    def milvus_is_server(self) -> bool:
        return bool(self.MILVUS_HOST)

    @property
    def metadata_url(self) -> str:
        if self.MYSQL_HOST:
            from urllib.parse import quote_plus

            return (
                f"mysql+pymysql://{quote_plus(self.MYSQL_USER)}:{quote_plus(self.MYSQL_PWD)}"
                f"@{self.MYSQL_HOST}:{self.MYSQL_PORT}/{self.MYSQL_DB}?charset=utf8mb4"
            )
        return f"sqlite:///{self.DATA_DIR / 'metadata.db'}"

    @property
    def files_dir(self) -> Path:
        return self.DATA_DIR / "files"

    @property
    def backups_dir(self) -> Path:
        return self.DATA_DIR / "backups"

    @property
    def upgrades_schema_on_start(self) -> bool:
        """The embedded default upgrades itself (after a copy); a MySQL server's operator decides."""
        return not self.MYSQL_HOST or self.MIGRATE_ON_START


def _split(values: str) -> list[str]:
    return [value.strip() for value in values.split(",") if value.strip()]


def is_loopback(host: str) -> bool:
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
