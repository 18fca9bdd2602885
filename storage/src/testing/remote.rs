//! Where the S3 and GCS integration tests run, from the environment.
//!
//! - S3: `STRATA_TEST_S3_ENDPOINT` (e.g. `http://127.0.0.1:5000`, the server
//!   `scripts/s3-test-server.sh` starts) and `STRATA_TEST_S3_BUCKET`; credentials and region from
//!   the standard `AWS_*` variables.
//! - GCS: `STRATA_TEST_GCS_BUCKET`, and `STRATA_TEST_GCS_ENDPOINT` for an emulator (real GCS
//!   otherwise, with credentials from the `GOOGLE_*` variables).
//!
//! Unset, the tests print why and pass without running: no server is installed by default.
//! With `STRATA_TEST_S3_REQUIRED=1` (as `.ci/run` sets) a missing S3 setting fails the test
//! instead, so CI can never skip them by accident.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ObjectStoreOptions;

/// A bucket the tests may write to, and the options that reach it.
#[derive(Debug, Clone)]
pub struct RemoteTarget {
    /// `s3://bucket` or `gs://bucket`.
    pub bucket_url: String,
    /// Endpoint, allow-http and short retries (a test should fail in seconds, not minutes).
    pub options: ObjectStoreOptions,
}

static FRESH: AtomicU64 = AtomicU64::new(0);

impl RemoteTarget {
    /// The S3 target, or `None` after printing that `test` is skipped.
    pub fn s3(test: &str) -> Option<RemoteTarget> {
        let endpoint = std::env::var("STRATA_TEST_S3_ENDPOINT").ok().filter(|v| !v.is_empty());
        let bucket = std::env::var("STRATA_TEST_S3_BUCKET").ok().filter(|v| !v.is_empty());
        let (Some(endpoint), Some(bucket)) = (endpoint, bucket) else {
            let required = std::env::var("STRATA_TEST_S3_REQUIRED").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{test}: STRATA_TEST_S3_REQUIRED=1 but STRATA_TEST_S3_ENDPOINT or \
                 STRATA_TEST_S3_BUCKET is unset"
            );
            eprintln!(
                "skipping {test}: set STRATA_TEST_S3_ENDPOINT and STRATA_TEST_S3_BUCKET \
                 (eval \"$(scripts/s3-test-server.sh start)\" starts a local server)"
            );
            return None;
        };
        Some(RemoteTarget::new(format!("s3://{bucket}"), Some(endpoint)))
    }

    /// The GCS target, or `None` after printing that `test` is skipped.
    pub fn gcs(test: &str) -> Option<RemoteTarget> {
        let Some(bucket) = std::env::var("STRATA_TEST_GCS_BUCKET").ok().filter(|v| !v.is_empty())
        else {
            eprintln!(
                "skipping {test}: set STRATA_TEST_GCS_BUCKET (and STRATA_TEST_GCS_ENDPOINT for \
                 an emulator) to run it"
            );
            return None;
        };
        let endpoint = std::env::var("STRATA_TEST_GCS_ENDPOINT").ok().filter(|v| !v.is_empty());
        Some(RemoteTarget::new(format!("gs://{bucket}"), endpoint))
    }

    fn new(bucket_url: String, endpoint: Option<String>) -> RemoteTarget {
        let mut options = ObjectStoreOptions::new()
            .max_retries(3)
            .retry_timeout(Duration::from_secs(20))
            .request_timeout(Duration::from_secs(60));
        if let Some(endpoint) = endpoint {
            options = options.allow_http(endpoint.starts_with("http://")).endpoint(endpoint);
        }
        RemoteTarget { bucket_url, options }
    }

    /// A URL under a prefix no other test (or earlier run) uses: `<bucket url>/<name>-<unique>`.
    pub fn fresh_url(&self, name: &str) -> String {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let n = FRESH.fetch_add(1, Ordering::Relaxed);
        format!("{}/{name}-{}-{nanos}-{n}", self.bucket_url, std::process::id())
    }
}
