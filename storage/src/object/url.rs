//! Opening storage by URL.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use object_store::ObjectStore;
use object_store::memory::InMemory;
use parking_lot::Mutex;

use super::{ObjectStoreBackend, ObjectStoreOptions};
use crate::{Error, LocalDir, Result, Storage, validate_key};

/// Named in-memory stores of this process (`memory://name`), kept for the process's life.
static NAMED_MEMORY: LazyLock<Mutex<HashMap<String, Arc<InMemory>>>> =
    LazyLock::new(Default::default);

/// Where a database lives, parsed from a URL or path by [`StorageUrl::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageUrl {
    /// A local directory: a plain path, or `file://` followed by one.
    Local(PathBuf),
    /// `memory://` (a new empty store on every open) or `memory://name` (one store per name,
    /// shared by every open in this process until it exits).
    Memory { name: Option<String> },
    /// `s3://bucket/prefix` (also `s3a://`): Amazon S3 or an S3-compatible server.
    S3 { bucket: String, prefix: String },
    /// `gs://bucket/prefix`: Google Cloud Storage.
    Gcs { bucket: String, prefix: String },
}

impl StorageUrl {
    /// Parses a location: `s3://bucket[/prefix]`, `s3a://...`, `gs://bucket[/prefix]`,
    /// `memory://[name]`, `file://path`, or a plain local path (anything without `://`).
    ///
    /// The prefix is a key prefix: `/`-separated components of ASCII letters, digits, `.`, `_`
    /// and `-` (see [`crate::validate_key`]); objects are stored at `prefix/key`.
    pub fn parse(url: &str) -> Result<StorageUrl> {
        let invalid = |reason: &str| {
            Err(Error::InvalidLocation { location: url.to_owned(), reason: reason.to_owned() })
        };
        if url.is_empty() {
            return invalid("empty");
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Ok(StorageUrl::Local(PathBuf::from(url)));
        };
        if rest.contains(['?', '#']) {
            return invalid("query strings and fragments are not supported; use options");
        }
        match scheme.to_ascii_lowercase().as_str() {
            "file" if rest.is_empty() => invalid("file:// needs a path"),
            "file" => Ok(StorageUrl::Local(PathBuf::from(rest))),
            "memory" if rest.is_empty() => Ok(StorageUrl::Memory { name: None }),
            "memory" => match validate_key(rest) {
                Ok(()) if !rest.contains('/') => Ok(StorageUrl::Memory { name: Some(rest.into()) }),
                _ => invalid(
                    "a memory store name is one component of letters, digits, '.', '_', '-'",
                ),
            },
            scheme @ ("s3" | "s3a" | "gs") => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                let prefix = prefix.trim_end_matches('/');
                if bucket.is_empty() {
                    return invalid("the bucket name is missing");
                }
                if !bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
                }) {
                    return invalid("a bucket name uses lowercase letters, digits, '.', '-', '_'");
                }
                if !prefix.is_empty() && validate_key(prefix).is_err() {
                    return invalid(
                        "the prefix must be '/'-separated components of ASCII letters, digits, '.', '_' and '-'",
                    );
                }
                let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
                Ok(if scheme == "gs" {
                    StorageUrl::Gcs { bucket, prefix }
                } else {
                    StorageUrl::S3 { bucket, prefix }
                })
            }
            _ => invalid("unknown scheme; expected s3://, gs://, memory://, file:// or a path"),
        }
    }

    /// True for a local directory.
    pub fn is_local(&self) -> bool {
        matches!(self, StorageUrl::Local(_))
    }
}

/// Opens the storage at `url` (see [`StorageUrl::parse`]).
///
/// - A plain path or `file://path`: a [`LocalDir`] (created if missing; `options` unused).
/// - `s3://bucket/prefix`: Amazon S3 or a compatible server (feature `s3`). Credentials,
///   region and endpoint come from the `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`,
///   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
///   `AWS_ALLOW_HTTP`, ...) or the instance's role; [`ObjectStoreOptions::endpoint`],
///   [`allow_http`](ObjectStoreOptions::allow_http) and [`region`](ObjectStoreOptions::region)
///   override them. Conditional puts (`If-None-Match: *`) must be supported, as they are by
///   S3 itself, MinIO and moto.
/// - `gs://bucket/prefix`: Google Cloud Storage (feature `gcs`), credentials from
///   `GOOGLE_APPLICATION_CREDENTIALS`, `GOOGLE_SERVICE_ACCOUNT`, `GOOGLE_SERVICE_ACCOUNT_KEY`
///   or the instance's account; [`ObjectStoreOptions::endpoint`] points it at an emulator.
/// - `memory://` or `memory://name`: `object_store`'s in-memory store, for tests.
///
/// Opening a bucket lists it once ([`ObjectStoreOptions::check_bucket`]), so a missing bucket or
/// refused credentials fail here with [`Error::Remote`] naming the cause. A scheme whose feature
/// is not compiled in is [`Error::InvalidLocation`].
pub fn open_url(url: &str, options: &ObjectStoreOptions) -> Result<Arc<dyn Storage>> {
    match StorageUrl::parse(url)? {
        StorageUrl::Local(path) => Ok(Arc::new(LocalDir::open(path)?)),
        parsed => Ok(Arc::new(open_backend(&parsed, url, options)?)),
    }
}

pub(super) fn open_backend(
    parsed: &StorageUrl,
    url: &str,
    options: &ObjectStoreOptions,
) -> Result<ObjectStoreBackend> {
    let backend = match parsed {
        StorageUrl::Local(_) => {
            return Err(Error::InvalidLocation {
                location: url.to_owned(),
                reason: "a local path is a LocalDir, not an object store".into(),
            });
        }
        StorageUrl::Memory { name: None } => return ObjectStoreBackend::memory(options),
        StorageUrl::Memory { name: Some(name) } => {
            let store: Arc<dyn ObjectStore> =
                Arc::clone(NAMED_MEMORY.lock().entry(name.clone()).or_default()) as _;
            let location = format!("memory://{}-{name}", std::process::id());
            return ObjectStoreBackend::memory_store(store, location, options);
        }
        StorageUrl::S3 { bucket, prefix } => s3(bucket, prefix, url, options)?,
        StorageUrl::Gcs { bucket, prefix } => gcs(bucket, prefix, url, options)?,
    };
    if options.check_bucket {
        backend.list_raw("open", None).map_err(|e| match e {
            // A listing never answers "not found" for a bucket that exists.
            Error::NotFound { .. } => Error::Remote {
                store: backend.location.clone(),
                op: "open",
                key: String::new(),
                kind: crate::RemoteErrorKind::MissingBucket,
                source: "listing the bucket answered \"not found\"".into(),
            },
            e => e,
        })?;
    }
    Ok(backend)
}

/// The location string of a bucket and prefix, as errors and cache namespaces show it.
#[cfg(any(feature = "s3", feature = "gcs"))]
fn location(scheme: &str, bucket: &str, prefix: &str, endpoint: Option<&str>) -> String {
    let mut location = format!("{scheme}://{bucket}");
    if !prefix.is_empty() {
        location.push('/');
        location.push_str(prefix);
    }
    if let Some(endpoint) = endpoint {
        location.push_str(" at ");
        location.push_str(endpoint);
    }
    location
}

#[cfg(any(feature = "s3", feature = "gcs"))]
fn remote_backend<S: ObjectStore>(
    store: S,
    prefix: &str,
    location: String,
    counters: Arc<super::stats::Counters>,
    runtime: std::io::Result<super::Runtime>,
    options: &ObjectStoreOptions,
) -> Result<ObjectStoreBackend> {
    use object_store::prefix::PrefixStore;
    let store: Arc<dyn ObjectStore> =
        if prefix.is_empty() { Arc::new(store) } else { Arc::new(PrefixStore::new(store, prefix)) };
    let parts = super::Parts { store, location, counters, count_calls: false, ephemeral: false };
    ObjectStoreBackend::assemble(parts, runtime, options)
}

#[cfg(any(feature = "s3", feature = "gcs"))]
fn check_remote_part_size(url: &str, options: &ObjectStoreOptions) -> Result<()> {
    if options.part_size < super::MIN_REMOTE_PART_SIZE {
        return Err(Error::InvalidLocation {
            location: url.to_owned(),
            reason: format!(
                "part_size {} is below the 5 MiB S3 and GCS require of multipart parts",
                options.part_size
            ),
        });
    }
    Ok(())
}

#[cfg(any(feature = "s3", feature = "gcs"))]
fn retry_config(options: &ObjectStoreOptions) -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: options.max_retries,
        retry_timeout: options.retry_timeout,
        ..Default::default()
    }
}

#[cfg(any(feature = "s3", feature = "gcs"))]
fn millis(duration: std::time::Duration) -> String {
    format!("{}ms", duration.as_millis())
}

#[cfg(feature = "s3")]
fn s3(
    bucket: &str,
    prefix: &str,
    url: &str,
    options: &ObjectStoreOptions,
) -> Result<ObjectStoreBackend> {
    use object_store::ClientConfigKey;
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};

    check_remote_part_size(url, options)?;
    let counters = Arc::default();
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_retry(retry_config(options))
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            millis(options.request_timeout),
        )
        .with_http_connector(super::http::CountingConnector { counters: Arc::clone(&counters) });
    if let Some(endpoint) = &options.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(allow) = options.allow_http {
        builder = builder.with_allow_http(allow);
    }
    if let Some(region) = &options.region {
        builder = builder.with_region(region);
    }
    if let Some((id, secret)) = &options.access_key {
        builder = builder.with_access_key_id(id).with_secret_access_key(secret);
    }
    let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
    let location = location("s3", bucket, prefix, endpoint.as_deref());
    let store = builder.build().map_err(|e| Error::InvalidLocation {
        location: url.to_owned(),
        reason: format!("S3 configuration refused: {e}"),
    })?;
    remote_backend(store, prefix, location, counters, super::Runtime::new(), options)
}

#[cfg(not(feature = "s3"))]
fn s3(_: &str, _: &str, url: &str, _: &ObjectStoreOptions) -> Result<ObjectStoreBackend> {
    Err(Error::InvalidLocation {
        location: url.to_owned(),
        reason: "this build has no S3 support (enable the `s3` feature of strata-storage)".into(),
    })
}

#[cfg(feature = "gcs")]
fn gcs(
    bucket: &str,
    prefix: &str,
    url: &str,
    options: &ObjectStoreOptions,
) -> Result<ObjectStoreBackend> {
    use object_store::ClientConfigKey;
    use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};

    check_remote_part_size(url, options)?;
    let counters = Arc::default();
    let mut builder = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry_config(options))
        .with_config(
            GoogleConfigKey::Client(ClientConfigKey::Timeout),
            millis(options.request_timeout),
        )
        .with_http_connector(super::http::CountingConnector { counters: Arc::clone(&counters) });
    if let Some(endpoint) = &options.endpoint {
        // An emulator (fake-gcs-server and the like) takes no OAuth tokens.
        builder = builder.with_base_url(endpoint).with_skip_signature(true);
    }
    if let Some(allow) = options.allow_http {
        builder = builder
            .with_config(GoogleConfigKey::Client(ClientConfigKey::AllowHttp), allow.to_string());
    }
    let location = location("gs", bucket, prefix, options.endpoint.as_deref());
    let store = builder.build().map_err(|e| Error::InvalidLocation {
        location: url.to_owned(),
        reason: format!("GCS configuration refused: {e}"),
    })?;
    remote_backend(store, prefix, location, counters, super::Runtime::new(), options)
}

#[cfg(not(feature = "gcs"))]
fn gcs(_: &str, _: &str, url: &str, _: &ObjectStoreOptions) -> Result<ObjectStoreBackend> {
    Err(Error::InvalidLocation {
        location: url.to_owned(),
        reason: "this build has no GCS support (enable the `gcs` feature of strata-storage)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(bucket: &str, prefix: &str) -> StorageUrl {
        StorageUrl::S3 { bucket: bucket.into(), prefix: prefix.into() }
    }

    #[test]
    fn parses_every_form() {
        let cases = [
            ("s3://bucket/db/one", s3("bucket", "db/one")),
            ("s3a://bucket", s3("bucket", "")),
            ("s3://bucket/db/", s3("bucket", "db")),
            ("gs://b-1.x/p", StorageUrl::Gcs { bucket: "b-1.x".into(), prefix: "p".into() }),
            ("memory://", StorageUrl::Memory { name: None }),
            ("memory://shared", StorageUrl::Memory { name: Some("shared".into()) }),
            ("file:///tmp/db", StorageUrl::Local("/tmp/db".into())),
            ("relative/dir", StorageUrl::Local("relative/dir".into())),
            ("/abs/dir", StorageUrl::Local("/abs/dir".into())),
        ];
        for (url, expected) in cases {
            assert_eq!(StorageUrl::parse(url).unwrap(), expected, "{url}");
        }
        assert!(StorageUrl::parse("/x").unwrap().is_local());
    }

    #[test]
    fn refuses_bad_locations_with_a_reason() {
        for url in [
            "",
            "s3://",
            "s3:///prefix",
            "s3://Bucket/x",
            "s3://bucket/a//b",
            "s3://bucket/.hidden",
            "s3://bucket/x?region=eu",
            "ftp://host/x",
            "memory://a/b",
            "file://",
        ] {
            match StorageUrl::parse(url) {
                Err(Error::InvalidLocation { location, reason }) => {
                    assert_eq!(location, url);
                    assert!(!reason.is_empty());
                }
                other => panic!("{url:?} should be refused, got {other:?}"),
            }
        }
    }

    #[test]
    fn named_memory_stores_are_shared_and_unnamed_ones_are_not() {
        let options = ObjectStoreOptions::new();
        let a = open_url("memory://url-test-shared", &options).unwrap();
        let b = open_url("memory://url-test-shared", &options).unwrap();
        a.put("k", b"v").unwrap();
        assert_eq!(&b.get("k").unwrap()[..], b"v");
        let c = open_url("memory://", &options).unwrap();
        assert!(c.get("k").unwrap_err().is_not_found());
    }

    #[test]
    fn local_paths_open_a_local_dir() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("db").display());
        let store = open_url(&url, &ObjectStoreOptions::new()).unwrap();
        store.put("a/b", b"x").unwrap();
        assert!(dir.path().join("db/a/b").is_file());
        assert!(matches!(
            ObjectStoreBackend::open(&url, &ObjectStoreOptions::new()),
            Err(Error::InvalidLocation { .. })
        ));
    }
}
