"""Start the server: `python main.py` (settings from environment variables or .env)."""
from __future__ import annotations

import sys

import uvicorn

from config import Settings
from webserver.api.app import create_app
from webserver.api.observability import configure_logging
from webserver.errors import EncoderLoadError
from webserver.services.container import load_encoders


def main() -> int:
    settings = Settings()
    configure_logging(settings.LOG_FORMAT)
    refusal = settings.exposure_refusal()
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    try:
        # Loaded here rather than in the lifespan only so a bad model setting ends with one clear line.
        encoders = load_encoders(settings)
    except EncoderLoadError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    # One worker: an embedded Milvus Lite file can be opened by a single process only.
    # Our middleware logs each request with its id; uvicorn's loggers go through the same handler.
    uvicorn.run(create_app(settings, encoders), host=settings.HOST, port=settings.PORT, workers=1,
                log_config=None, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
