//! Mapping `object_store` errors onto the crate's [`Error`].

use std::error::Error as StdError;

use crate::{Error, RemoteErrorKind};

/// Maps an `object_store` error from operation `op` on `key` of the store `store`.
///
/// "Not found" and "already exists" keep their own variants (callers match on them whatever the
/// backend); everything else becomes [`Error::Remote`] with a kind saying whether retrying can
/// help. A missing bucket answers 404 like a missing object, so it is told apart by the S3/GCS
/// error code in the reply.
pub(crate) fn from_store(
    store: &str,
    op: &'static str,
    key: &str,
    error: object_store::Error,
) -> Error {
    use object_store::Error as E;
    let kind = match &error {
        _ if mentions(&error, NO_SUCH_BUCKET) => RemoteErrorKind::MissingBucket,
        E::NotFound { .. } => return Error::NotFound { key: key.to_owned() },
        E::AlreadyExists { .. } => return Error::AlreadyExists { key: key.to_owned() },
        E::PermissionDenied { .. } => RemoteErrorKind::AccessDenied,
        E::Unauthenticated { .. } => RemoteErrorKind::Unauthenticated,
        // No credentials configured: the client fell back to the cloud's instance metadata
        // service, which is refused or absent off the cloud.
        _ if mentions(&error, INSTANCE_METADATA) => RemoteErrorKind::Unauthenticated,
        E::NotSupported { .. } | E::NotImplemented { .. } => RemoteErrorKind::Unsupported,
        _ if is_transient(&error) => RemoteErrorKind::Unavailable,
        _ => RemoteErrorKind::Other,
    };
    Error::Remote {
        store: store.to_owned(),
        op,
        key: key.to_owned(),
        kind,
        source: Box::new(error),
    }
}

/// The error code S3 and GCS (XML API) put in the body of a reply about a missing bucket. The
/// whole element, so a key that happens to be named `NoSuchBucket` is not mistaken for one.
const NO_SUCH_BUCKET: &str = "<Code>NoSuchBucket</Code>";

/// The address of the instance metadata service (AWS and GCP), where credentials are fetched
/// when none are configured.
const INSTANCE_METADATA: &str = "169.254.169.254";

/// True if `needle` appears in the message of the error or of any of its sources.
fn mentions(error: &(dyn StdError + 'static), needle: &str) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.to_string().contains(needle) {
            return true;
        }
        next = error.source();
    }
    false
}

/// Failures retries were meant to ride out: the request could not be sent or kept failing.
fn is_transient(error: &(dyn StdError + 'static)) -> bool {
    #[cfg(any(feature = "s3", feature = "gcs"))]
    {
        use object_store::client::{HttpError, HttpErrorKind};
        let mut next = Some(error);
        while let Some(error) = next {
            if let Some(http) = error.downcast_ref::<HttpError>() {
                return matches!(
                    http.kind(),
                    HttpErrorKind::Connect
                        | HttpErrorKind::Request
                        | HttpErrorKind::Timeout
                        | HttpErrorKind::Interrupted
                );
            }
            next = error.source();
        }
    }
    // The retry layer reports "after N retries" once it gives up on 5xx replies or throttling.
    mentions(error, " retries")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(message: &str) -> Box<dyn StdError + Send + Sync> {
        message.to_owned().into()
    }

    fn kind(error: object_store::Error) -> Option<RemoteErrorKind> {
        match from_store("s3://bucket/db", "get", "k", error) {
            Error::Remote { kind, store, op, key, .. } => {
                assert_eq!((store.as_str(), op, key.as_str()), ("s3://bucket/db", "get", "k"));
                Some(kind)
            }
            _ => None,
        }
    }

    #[test]
    fn permanent_failures_get_their_own_kind() {
        use object_store::Error as E;
        let path = || "db/k".to_owned();
        let missing_bucket = E::NotFound {
            path: path(),
            source: boxed("Server returned non-2xx status code: 404: <Code>NoSuchBucket</Code>"),
        };
        assert_eq!(kind(missing_bucket), Some(RemoteErrorKind::MissingBucket));
        let denied = E::PermissionDenied { path: path(), source: boxed("403 AccessDenied") };
        assert_eq!(kind(denied), Some(RemoteErrorKind::AccessDenied));
        let unauthenticated = E::Unauthenticated { path: path(), source: boxed("401") };
        assert_eq!(kind(unauthenticated), Some(RemoteErrorKind::Unauthenticated));
        let no_credentials = E::Generic {
            store: "S3",
            source: boxed("Error performing PUT http://169.254.169.254/latest/api/token - 403"),
        };
        assert_eq!(kind(no_credentials), Some(RemoteErrorKind::Unauthenticated));
        let unsupported =
            E::NotImplemented { operation: "put_opts".into(), implementer: "x".into() };
        assert_eq!(kind(unsupported), Some(RemoteErrorKind::Unsupported));
        assert!(RemoteErrorKind::MissingBucket.is_permanent());
        assert!(!RemoteErrorKind::Unavailable.is_permanent());
    }

    #[test]
    fn retried_failures_are_unavailable_and_plain_misses_stay_not_found() {
        use object_store::Error as E;
        let retried = E::Generic {
            store: "S3",
            source: boxed("Error performing GET in 3s, after 10 retries - 503 Slow Down"),
        };
        assert_eq!(kind(retried), Some(RemoteErrorKind::Unavailable));
        let other = E::Generic { store: "S3", source: boxed("400 Bad Request") };
        assert_eq!(kind(other), Some(RemoteErrorKind::Other));
        let missing = E::NotFound { path: "db/k".into(), source: boxed("404 NoSuchKey") };
        assert!(from_store("s", "get", "k", missing).is_not_found());
        let named = E::NotFound { path: "NoSuchBucket".into(), source: boxed("404") };
        assert!(from_store("s", "get", "NoSuchBucket", named).is_not_found(), "a key's name");
        let exists = E::AlreadyExists { path: "db/k".into(), source: boxed("412") };
        assert!(from_store("s", "put_if_absent", "k", exists).is_already_exists());
        let message = from_store(
            "s3://nope/db",
            "list",
            "",
            E::NotFound {
                path: String::new(),
                source: boxed("404: <Error><Code>NoSuchBucket</Code></Error>"),
            },
        )
        .to_string();
        assert!(
            message.contains("s3://nope/db") && message.contains("bucket does not exist"),
            "{message}"
        );
    }
}
