//! The daemon side of the control socket.

use std::convert::Infallible;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::api::{
    ApproveRequest, Approved, CacheGcReport, CacheGcRequest, CacheReport, CacheVerifyReport, CancelRequest, Cancelled,
    DeviceChange, DeviceChanged, DeviceList, DeviceReport, PlanReport, PlanRequest, StatusReport, TopologyReport,
    UpdateList,
};
use super::ApiError;

/// Largest request body the control socket reads.
const MAX_BODY: usize = 64 * 1024;

/// Who is asking, from the kernel (SO_PEERCRED), not from anything the client says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

/// What the daemon answers on the control socket.
///
/// Reads are open to every local user; changes check the peer's rights (see `fleet::rights`).
pub trait ControlApi: Send + Sync + 'static {
    /// `GET /v1/status`
    fn status(&self, peer: Peer) -> impl Future<Output = Result<StatusReport, ApiError>> + Send;
    /// The DODAG and the neighbours heard; 503 while the radio has not come up yet.
    fn topology(&self, peer: Peer) -> impl Future<Output = Result<TopologyReport, ApiError>> + Send;
    /// `GET /v1/plan[?at=RFC3339]`
    fn plan(&self, peer: Peer, request: PlanRequest) -> impl Future<Output = Result<PlanReport, ApiError>> + Send;
    /// `GET /v1/devices`
    fn devices(&self, peer: Peer) -> impl Future<Output = Result<DeviceList, ApiError>> + Send;
    /// `GET /v1/devices/{eui64}`
    fn device(&self, peer: Peer, eui64: String) -> impl Future<Output = Result<DeviceReport, ApiError>> + Send;
    /// `POST /v1/devices/admit`
    fn admit(&self, peer: Peer, change: DeviceChange) -> impl Future<Output = Result<DeviceChanged, ApiError>> + Send;
    /// `POST /v1/devices/retire`
    fn retire(&self, peer: Peer, change: DeviceChange) -> impl Future<Output = Result<DeviceChanged, ApiError>> + Send;
    /// `GET /v1/updates`
    fn updates(&self, peer: Peer) -> impl Future<Output = Result<UpdateList, ApiError>> + Send;
    /// `POST /v1/updates/approve`
    fn approve(&self, peer: Peer, request: ApproveRequest) -> impl Future<Output = Result<Approved, ApiError>> + Send;
    /// `POST /v1/sessions/cancel`
    fn cancel(&self, peer: Peer, request: CancelRequest) -> impl Future<Output = Result<Cancelled, ApiError>> + Send;
    /// `GET /v1/cache`
    fn cache(&self, peer: Peer) -> impl Future<Output = Result<CacheReport, ApiError>> + Send;
    /// `POST /v1/cache/verify` (root only: it drops corrupt blobs)
    fn cache_verify(&self, peer: Peer) -> impl Future<Output = Result<CacheVerifyReport, ApiError>> + Send;
    /// `POST /v1/cache/gc` (root only)
    fn cache_gc(
        &self,
        peer: Peer,
        request: CacheGcRequest,
    ) -> impl Future<Output = Result<CacheGcReport, ApiError>> + Send;
}

/// A bound control socket. The socket file is removed when the server is dropped.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Binds `path`, replacing a stale socket file that nobody listens on. Local users may
    /// connect (status is public on the box); handlers decide by uid what each may do.
    pub async fn bind(path: &Path) -> std::io::Result<ControlServer> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if path.exists() {
            if UnixStream::connect(path).await.is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("{} is in use by a running ferryd; set another [control] socket", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
        Ok(ControlServer { listener, path: path.to_owned() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn serve<A: ControlApi>(self, api: Arc<A>, shutdown: CancellationToken) {
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket: accept failed");
                        continue;
                    }
                },
            };
            let peer = match stream.peer_cred() {
                Ok(cred) => Peer { uid: cred.uid(), gid: cred.gid(), pid: cred.pid() },
                Err(e) => {
                    tracing::warn!(error = %e, "control socket: cannot read peer credentials; closing");
                    continue;
                }
            };
            let api = api.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let api = api.clone();
                    async move { Ok::<_, Infallible>(dispatch(&*api, peer, request).await) }
                });
                let connection =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    result = connection => if let Err(e) = result {
                        tracing::debug!(uid = peer.uid, error = %e, "control connection ended with an error");
                    },
                    _ = shutdown.cancelled() => {}
                }
            });
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn dispatch<A: ControlApi>(api: &A, peer: Peer, request: Request<Incoming>) -> Response<Full<Bytes>> {
    tracing::debug!(uid = peer.uid, method = %request.method(), path = request.uri().path(), "control request");
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    match (&method, path.as_str()) {
        (&Method::GET, "/v1/status") => respond(api.status(peer).await),
        (&Method::GET, "/v1/topology") => respond(api.topology(peer).await),
        (&Method::GET, "/v1/plan") => {
            let at =
                url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "at").map(|(_, v)| v.into_owned());
            respond(api.plan(peer, PlanRequest { at }).await)
        }
        (&Method::GET, "/v1/devices") => respond(api.devices(peer).await),
        (&Method::GET, device) if device.starts_with("/v1/devices/") => {
            // Clients that escape the colons send `%3A`.
            let eui = device.trim_start_matches("/v1/devices/").replace("%3A", ":").replace("%3a", ":");
            respond(api.device(peer, eui).await)
        }
        (&Method::POST, "/v1/devices/admit") => match body(request).await {
            Ok(change) => respond(api.admit(peer, change).await),
            Err(e) => error(e),
        },
        (&Method::POST, "/v1/devices/retire") => match body(request).await {
            Ok(change) => respond(api.retire(peer, change).await),
            Err(e) => error(e),
        },
        (&Method::GET, "/v1/updates") => respond(api.updates(peer).await),
        (&Method::POST, "/v1/updates/approve") => match body(request).await {
            Ok(approve) => respond(api.approve(peer, approve).await),
            Err(e) => error(e),
        },
        (&Method::POST, "/v1/sessions/cancel") => match body(request).await {
            Ok(cancel) => respond(api.cancel(peer, cancel).await),
            Err(e) => error(e),
        },
        (&Method::GET, "/v1/cache") => respond(api.cache(peer).await),
        (&Method::POST, "/v1/cache/verify") => respond(api.cache_verify(peer).await),
        (&Method::POST, "/v1/cache/gc") => match body(request).await {
            Ok(gc) => respond(api.cache_gc(peer, gc).await),
            Err(e) => error(e),
        },
        (_, "/v1/status" | "/v1/topology" | "/v1/plan" | "/v1/devices" | "/v1/updates") => {
            error(ApiError { status: 405, message: "use GET".into() })
        }
        (_, "/v1/devices/admit" | "/v1/devices/retire" | "/v1/updates/approve" | "/v1/sessions/cancel") => {
            error(ApiError { status: 405, message: "use POST".into() })
        }
        (_, "/v1/cache") => error(ApiError { status: 405, message: "use GET".into() }),
        (_, "/v1/cache/verify" | "/v1/cache/gc") => error(ApiError { status: 405, message: "use POST".into() }),
        (_, path) => error(ApiError { status: 404, message: format!("no control endpoint {path}") }),
    }
}

/// A JSON request body, at most [`MAX_BODY`] bytes.
async fn body<T: serde::de::DeserializeOwned>(request: Request<Incoming>) -> Result<T, ApiError> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(request.into_body(), MAX_BODY);
    let bytes = limited
        .collect()
        .await
        .map_err(|e| ApiError {
            status: 400,
            message: format!("cannot read the request body (at most {MAX_BODY} bytes): {e}"),
        })?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| ApiError { status: 400, message: format!("bad request body: {e}") })
}

fn respond<T: Serialize>(result: Result<T, ApiError>) -> Response<Full<Bytes>> {
    match result.and_then(|value| serde_json::to_vec(&value).map_err(ApiError::internal)) {
        Ok(body) => json(StatusCode::OK, body),
        Err(e) => error(e),
    }
}

fn error(e: ApiError) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, serde_json::to_vec(&e).unwrap_or_default())
}

fn json(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    response
}
