//! Counting HTTP requests on the wire: an `object_store` connector that wraps its reqwest client.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};

use super::stats::{Counters, Request};

/// Builds the default reqwest client and counts every request it sends, retries included.
#[derive(Debug)]
pub(crate) struct CountingConnector {
    pub(crate) counters: Arc<Counters>,
}

impl HttpConnector for CountingConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(CountingService { inner, counters: Arc::clone(&self.counters) }))
    }
}

#[derive(Debug)]
struct CountingService {
    inner: HttpClient,
    counters: Arc<Counters>,
}

type Reply<'a> = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'a>>;

// `HttpService` is declared with `async_trait`; this is the signature it expands to.
impl HttpService for CountingService {
    fn call<'a, 'b>(&'a self, request: HttpRequest) -> Reply<'b>
    where
        'a: 'b,
        Self: 'b,
    {
        self.counters.add(classify(request.method().as_str(), request.uri().query()));
        Box::pin(self.inner.execute(request))
    }
}

/// The kind of an S3 or GCS request from its method and query string.
fn classify(method: &str, query: Option<&str>) -> Request {
    let query = query.unwrap_or("");
    match method {
        // S3 ListObjectsV2 (`list-type=2`), GCS JSON API listings (`prefix=`).
        "GET" if query.contains("list-type=") || query.contains("prefix=") => Request::List,
        "GET" => Request::Get,
        "HEAD" => Request::Head,
        "PUT" => Request::Put,
        "DELETE" => Request::Delete,
        _ => Request::Post,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_like_s3_bills() {
        assert_eq!(classify("GET", None), Request::Get);
        assert_eq!(classify("GET", Some("list-type=2&prefix=a%2F")), Request::List);
        assert_eq!(classify("HEAD", None), Request::Head);
        assert_eq!(classify("PUT", Some("partNumber=1&uploadId=x")), Request::Put);
        assert_eq!(classify("POST", Some("uploads")), Request::Post);
        assert_eq!(classify("DELETE", Some("uploadId=x")), Request::Delete);
    }
}
