"""Start the server: `python main.py` (settings from environment variables or .env)."""
from __future__ import annotations

import logging
import sys

import uvicorn

from config import Settings
from webserver.api.app import create_app
from webserver.errors import EncoderLoadError
from webserver.services.container import load_encoder


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    try:
        # Loaded here rather than in the lifespan only so a bad model setting ends with one clear line.
        encoder = load_encoder(settings)
    except EncoderLoadError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    # One worker: an embedded Milvus Lite file can be opened by a single process only.
    uvicorn.run(create_app(settings, encoder), host=settings.HOST, port=settings.PORT, workers=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
