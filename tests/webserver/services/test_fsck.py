"""fsck finds each kind of disagreement between rows, vectors and files, broken here on purpose, and
repairs what can be repaired."""
import os
import time

import numpy as np
import pytest

from tests.images import sample_uploads
from webserver.services.fsck import fsck


@pytest.fixture
def added(services):
    return services.images.add("images", sample_uploads(6))


def check_of(report, name="images"):
    return next(c for c in report.collections if c.name == name)


def test_a_consistent_store_is_clean(services, added):
    report = fsck(services, repair=False)
    assert report.clean and check_of(report).rows == check_of(report).vectors == 6


def test_a_row_without_a_vector_is_encoded_again(services, added):
    lost = added[2].id
    expected = services.vectors.get_vectors("images", [lost])[lost]
    services.vectors.delete("images", [lost])
    report = fsck(services, repair=False)
    assert check_of(report).missing_vectors == [lost] and not report.clean

    fsck(services, repair=True, settle_s=0)
    assert np.allclose(services.vectors.get_vectors("images", [lost])[lost], expected, atol=1e-4)
    assert fsck(services).clean


def test_a_vector_without_a_row_is_deleted(services, added):
    """What a write killed between its Milvus write and its commit leaves."""
    stale = services.metadata.reserve_ids([None])[0]
    vector = services.vectors.get_vectors("images", [added[0].id])[added[0].id]
    services.vectors.upsert("images", [stale], vector[None], [{}])
    assert check_of(fsck(services)).stale_vectors == [stale]

    fsck(services, repair=True, settle_s=0)
    assert services.vectors.get_vectors("images", [stale]) == {}
    assert fsck(services).clean and services.vectors.count("images") == 6


def test_orphan_files_older_than_the_grace_time_are_removed(services, added):
    young = services.files.put(b"a write in flight", "a" * 64, "PNG")
    old = services.files.put(b"a killed write", "b" * 64, "PNG")
    old_tmp = services.files.absolute(old).parent / ".tmp-killed"
    old_tmp.write_bytes(b"half")
    hour_ago = time.time() - 3600
    for path in (services.files.absolute(old), old_tmp):
        os.utime(path, (hour_ago, hour_ago))

    report = fsck(services, grace_s=600)
    assert report.orphan_files == sorted([old, f"{old.rsplit('/', 1)[0]}/.tmp-killed"])
    fsck(services, repair=True, grace_s=600)
    assert not services.files.exists(old) and not old_tmp.exists() and services.files.exists(young)
    assert all(services.images.read_file(item.id)[0] for item in added)  # the rows' files stay


def test_a_row_whose_file_is_gone_is_reported_not_hidden(services, added):
    record = services.images.get(added[1].id)
    services.files.remove(record.path)
    report = fsck(services, repair=True, settle_s=0)
    assert check_of(report).missing_files == [(record.id, record.path)] and not report.clean


def test_wrong_reference_counts_are_recounted(services, added):
    record = services.images.get(added[0].id)
    services.metadata.set_file_references({record.path: (record.sha256, 5)})
    report = fsck(services)
    assert report.wrong_references[record.path] == (5, 1) and len(report.wrong_references) == 6

    fsck(services, repair=True)
    assert fsck(services).clean
    services.images.delete(record.id)  # the count is right again: the last reference removes the file
    assert not services.files.exists(record.path)
