//! The CLI side of the control socket.

use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::UnixStream;

use super::api::{
    ApproveRequest, Approved, CacheGcReport, CacheGcRequest, CacheReport, CacheVerifyReport, CancelRequest, Cancelled,
    DeviceChange, DeviceChanged, DeviceList, DeviceReport, PlanReport, StatusReport, TopologyReport, UpdateList,
};
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

    /// The plan for now, or for `at` (RFC 3339).
    pub async fn plan(&self, at: Option<&str>) -> Result<PlanReport, ClientError> {
        match at {
            None => self.get("/v1/plan").await,
            Some(at) => {
                let query: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("at", at).finish();
                self.get(&format!("/v1/plan?{query}")).await
            }
        }
    }

    pub async fn devices(&self) -> Result<DeviceList, ClientError> {
        self.get("/v1/devices").await
    }

    pub async fn device(&self, eui64: &str) -> Result<DeviceReport, ClientError> {
        // Canonical `00:11:…` text is path-safe; anything else is refused here, before sending.
        let eui = crate::fleet::device::parse_eui64(eui64)
            .map_err(|e| ClientError::Api(super::ApiError { status: 400, message: e.to_string() }))?;
        self.get(&format!("/v1/devices/{eui}")).await
    }

    pub async fn admit(&self, change: &DeviceChange) -> Result<DeviceChanged, ClientError> {
        self.post("/v1/devices/admit", change).await
    }

    pub async fn retire(&self, change: &DeviceChange) -> Result<DeviceChanged, ClientError> {
        self.post("/v1/devices/retire", change).await
    }

    pub async fn updates(&self) -> Result<UpdateList, ClientError> {
        self.get("/v1/updates").await
    }

    pub async fn approve(&self, request: &ApproveRequest) -> Result<Approved, ClientError> {
        self.post("/v1/updates/approve", request).await
    }

    pub async fn cancel(&self, request: &CancelRequest) -> Result<Cancelled, ClientError> {
        self.post("/v1/sessions/cancel", request).await
    }

    pub async fn cache(&self) -> Result<CacheReport, ClientError> {
        self.get("/v1/cache").await
    }

    pub async fn cache_verify(&self) -> Result<CacheVerifyReport, ClientError> {
        self.post("/v1/cache/verify", &()).await
    }

    pub async fn cache_gc(&self, request: &CacheGcRequest) -> Result<CacheGcReport, ClientError> {
        self.post("/v1/cache/gc", request).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(Request::get(path), Vec::new()).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ClientError::Protocol { path: self.path.clone(), message: e.to_string() })?;
        let request = Request::post(path).header(hyper::header::CONTENT_TYPE, "application/json");
        self.send(request, body).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: hyper::http::request::Builder,
        body: Vec<u8>,
    ) -> Result<T, ClientError> {
        let protocol = |message: String| ClientError::Protocol { path: self.path.clone(), message };
        let stream = UnixStream::connect(&self.path)
            .await
            .map_err(|source| ClientError::Connect { path: self.path.clone(), source })?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| protocol(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let request = request
            .header(hyper::header::HOST, "ferry")
            .body(Full::new(Bytes::from(body)))
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
