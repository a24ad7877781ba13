//! The CLI side of the control socket.

use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use super::api::{StatusReport, TopologyReport};
use super::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach ferryd at {path}: {source}. Is ferryd running? Point at it with --socket PATH or --config FILE"
    )]
    Connect { path: PathBuf, source: std::io::Error },
    #[error("control socket {path}: {message}")]
    Protocol { path: PathBuf, message: String },
    #[error("ferryd refused the request: {0}")]
    Api(ApiError),
}

/// A connection to ferryd's control socket.
pub struct ControlClient {
    path: PathBuf,
}

impl ControlClient {
    pub fn new(path: &Path) -> ControlClient {
        ControlClient { path: path.to_owned() }
    }

    pub async fn status(&self) -> Result<StatusReport, ClientError> {
        self.get("/v1/status").await
    }

    pub async fn topology(&self) -> Result<TopologyReport, ClientError> {
        self.get("/v1/topology").await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let protocol = |message: String| ClientError::Protocol { path: self.path.clone(), message };
        let stream = UnixStream::connect(&self.path)
            .await
            .map_err(|source| ClientError::Connect { path: self.path.clone(), source })?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| protocol(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let request = Request::get(path)
            .header(hyper::header::HOST, "ferry")
            .body(Empty::<Bytes>::new())
            .map_err(|e| protocol(e.to_string()))?;
        let response = sender.send_request(request).await.map_err(|e| protocol(e.to_string()))?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| protocol(e.to_string()))?.to_bytes();
        driver.abort();
        if !status.is_success() {
            let error = serde_json::from_slice::<ApiError>(&body).unwrap_or_else(|_| ApiError {
                status: status.as_u16(),
                message: String::from_utf8_lossy(&body).into_owned(),
            });
            return Err(ClientError::Api(error));
        }
        serde_json::from_slice(&body).map_err(|e| protocol(format!("unexpected answer: {e}")))
    }
}
