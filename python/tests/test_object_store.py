"""A database in an S3 bucket (the moto server .ci/run starts), reached with storage_options."""

import os

import numpy as np
import pytest

import strata


@pytest.fixture
def bucket_url(request):
    endpoint = os.environ.get("STRATA_TEST_S3_ENDPOINT")
    bucket = os.environ.get("STRATA_TEST_S3_BUCKET")
    if not endpoint or not bucket:
        if os.environ.get("STRATA_TEST_S3_REQUIRED") == "1":
            pytest.fail("STRATA_TEST_S3_REQUIRED=1 but STRATA_TEST_S3_ENDPOINT/BUCKET are unset")
        pytest.skip("set STRATA_TEST_S3_ENDPOINT and STRATA_TEST_S3_BUCKET (scripts/s3-test-server.sh)")
    return f"s3://{bucket}/python-{os.getpid()}-{request.node.name}", endpoint


def test_a_database_in_a_bucket(bucket_url, rng, tmp_path):
    url, endpoint = bucket_url
    options = {"endpoint": endpoint, "allow_http": True, "region": "us-east-1",
               "cache_dir": tmp_path / "cache", "max_retries": 2}
    vectors = rng.standard_normal((300, 8), dtype=np.float32)
    with strata.create(url, dim=8, metric="l2", storage_options=options) as db:
        db.upsert(np.arange(300), vectors)
        version = db.commit()
    with strata.open_read_only(url, storage_options=options) as reader:
        assert len(reader) == 300 and reader.version == version
        got, _ = reader.search(vectors[:5], k=1, exact=True)
        assert got[:, 0].tolist() == [0, 1, 2, 3, 4]
    with strata.open_at(url, version, storage_options=options) as snapshot:
        np.testing.assert_array_equal(snapshot.get(7), vectors[7])
    with pytest.raises(strata.InvalidInputError, match="unknown storage option 'colour'"):
        strata.open(url, storage_options={"colour": "red"})
    with pytest.raises(strata.InvalidInputError, match="together"):
        strata.open(url, storage_options={"access_key_id": "x"})
