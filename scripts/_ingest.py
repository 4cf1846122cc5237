"""Shared by the scripts that index folders (insert_milvus.py, demo.py): BulkIngest behind a tqdm bar."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from webserver.services.bulk import BulkIngest, BulkReport, PrecomputedVectors
from webserver.services.container import Services


def ingest_with_progress(services: Services, collection: str, root: Path, files: Sequence[Path], *,
                         batch_size: int, captions: dict[str, str], file_metadata: dict[str, dict] | None = None,
                         precomputed: PrecomputedVectors | None = None) -> BulkReport:
    """Index `files` into `collection`, showing added / already indexed / failed as it goes.
    Raises DomainError when a store fails (finished batches are kept: re-running resumes)."""
    ingest = BulkIngest(images=services.images, metadata=services.metadata, collection=collection,
                        root=root, captions=captions,
                        file_metadata=file_metadata, precomputed=precomputed)
    with tqdm(total=len(files), unit="img", desc=f"indexing into {collection}") as bar:
        def progress(done: int, report: BulkReport) -> None:
            bar.update(done)
            bar.set_postfix(added=report.added, skipped=report.already_indexed, failed=len(report.failed))

        report = ingest.run(files, batch_size, on_batch=progress)
    seconds = report.seconds
    print(f"stages: read + decode + preprocess {seconds['read']:.1f} s in {ingest.read_workers} reader threads "
          f"(the encoder waited {seconds['waiting_for_read']:.1f} s for them), encode {seconds['encode']:.1f} s, "
          f"write {seconds['write']:.1f} s beside it (the encoder waited {seconds['waiting_for_write']:.1f} s "
          "for writes)", flush=True)
    return report
