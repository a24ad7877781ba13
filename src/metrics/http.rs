//! `GET /metrics` over HTTP/1.1 (hyper), for Prometheus to scrape.

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Metrics;

/// A bound metrics endpoint; [`MetricsServer::serve`] answers scrapes until shutdown.
pub struct MetricsServer {
    listener: TcpListener,
    metrics: Metrics,
}

impl MetricsServer {
    pub async fn bind(addr: SocketAddr, metrics: Metrics) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr).await?;
        Ok(MetricsServer { listener, metrics })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn serve(self, shutdown: CancellationToken) {
        loop {
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics endpoint: accept failed");
                        continue;
                    }
                },
            };
            let metrics = self.metrics.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, Infallible>(answer(&metrics, request)) }
                });
                let connection =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    result = connection => if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "metrics connection ended with an error");
                    },
                    _ = shutdown.cancelled() => {}
                }
            });
        }
    }
}

fn answer(metrics: &Metrics, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => (StatusCode::OK, prometheus::TEXT_FORMAT, metrics.render()),
        (_, "/metrics") => (StatusCode::METHOD_NOT_ALLOWED, "text/plain", "use GET\n".to_owned()),
        (_, "/") => (StatusCode::OK, "text/plain", "ferryd: metrics are at /metrics\n".to_owned()),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found; metrics are at /metrics\n".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
