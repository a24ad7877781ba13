//! CoAP repositories (`coap://host[:port]/base`), the layout `aiocoap-fileserver` serves for
//! RIOT: block-wise GETs through ferry's own endpoint over its UDP shell, started on first use.
//!
//! Small resources (index, envelopes) come in one block-wise fetch, bounded by the endpoint.
//! Payloads are fetched one Block2 request at a time and written as each block arrives, so a
//! download cut off (server gone, ferry stopped) keeps its `.partial` file and the next attempt
//! asks for the block after the last one written, as HTTP resumes with Range. The writer
//! bounds the body at the signed size: an endless resource is cut off at the first byte past it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::{join_err, FetchError, Small};
use crate::coap::block::{size_of_szx, BlockOpt};
use crate::coap::udp::{self, ShellHandle, UdpPeer};
use crate::coap::{Code, Config, Endpoint, Event, FetchOptions, Request, RequestError, RequestId, Response, Router};
use crate::repo::cache::{BlobWriter, CacheError, Landed};

const DEFAULT_PORT: u16 = 5683;
/// 1024-byte blocks upstream: the repository is not a constrained device.
const SZX: u8 = 6;
/// A whole fetch gives up after this long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(600);
/// One block of a payload download gives up after this long (CoAP retransmits inside it).
const BLOCK_TIMEOUT: Duration = Duration::from_secs(20);

pub struct CoapSource {
    base: Url,
    client: Mutex<Option<Client>>,
    /// The Observe registration of the index, while the server keeps it.
    observation: std::sync::Mutex<Option<RequestId>>,
    /// A notification arrived (possibly while a fetch was reading the events).
    change_pending: AtomicBool,
    /// The server answered a registration without Observe: not asked again.
    observe_unsupported: AtomicBool,
}

struct Client {
    handle: ShellHandle,
    events: mpsc::Receiver<Event<UdpPeer>>,
    peer: UdpPeer,
    stop: CancellationToken,
}

impl Drop for CoapSource {
    fn drop(&mut self) {
        if let Ok(guard) = self.client.try_lock() {
            if let Some(c) = guard.as_ref() {
                c.stop.cancel();
            }
        }
    }
}

fn transport(e: impl std::fmt::Display) -> FetchError {
    FetchError::Transport(e.to_string())
}

impl CoapSource {
    pub fn new(base: Url) -> Result<CoapSource, String> {
        if base.host_str().is_none() {
            return Err(format!("{base} has no host"));
        }
        Ok(CoapSource {
            base,
            client: Mutex::new(None),
            observation: std::sync::Mutex::new(None),
            change_pending: AtomicBool::new(false),
            observe_unsupported: AtomicBool::new(false),
        })
    }

    fn observation(&self) -> Option<RequestId> {
        self.observation.lock().ok().and_then(|o| *o)
    }

    fn set_observation(&self, id: Option<RequestId>) {
        if let Ok(mut o) = self.observation.lock() {
            *o = id;
        }
    }

    /// Whether the server keeps an Observe registration of the index for us.
    pub fn observing(&self) -> bool {
        self.observation().is_some()
    }

    /// The outcome of request `want` if `event` is it; notifications of the index observation
    /// are noted on the way, whoever reads the events.
    fn sort(&self, event: Event<UdpPeer>, want: Option<RequestId>) -> Option<Result<Response, RequestError>> {
        let observation = self.observation();
        match event {
            Event::Response { id, response, .. } if Some(id) == want => Some(Ok(response)),
            Event::Failed { id, error, .. } if Some(id) == want => Some(Err(error)),
            Event::Response { id, response, .. } if Some(id) == observation => {
                if response.code == Code::Content {
                    self.change_pending.store(true, Ordering::SeqCst);
                }
                None
            }
            Event::Failed { id, error, .. } if Some(id) == observation => {
                tracing::info!(repository = %self.base, "repo: the index observation ended ({error}); polling");
                self.set_observation(None);
                None
            }
            _ => None,
        }
    }

    /// Waits up to `limit` for the outcome of request `id`; `None` when nothing came in time.
    async fn answer(
        &self,
        client: &mut Client,
        id: RequestId,
        limit: Duration,
    ) -> Option<Result<Response, RequestError>> {
        let wait = async {
            while let Some(event) = client.events.recv().await {
                if let Some(result) = self.sort(event, Some(id)) {
                    return result;
                }
            }
            Err(RequestError::Encode("CoAP shell stopped".into()))
        };
        tokio::time::timeout(limit, wait).await.ok()
    }

    /// Registers Observe on `path` (the index). False when the server answers without
    /// Observe: it does not support it, and polling goes on alone.
    pub async fn observe(&self, path: &str) -> Result<bool, FetchError> {
        if self.observing() {
            return Ok(true);
        }
        if self.observe_unsupported.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let mut guard = self.client().await?;
        let Some(client) = guard.as_mut() else {
            return Err(transport("CoAP client did not start"));
        };
        let peer = client.peer;
        let mut request = Request::get(&self.path(path));
        request.observe = Some(0);
        let id = client
            .handle
            .with(move |ep, now| ep.start_request(now, peer, request))
            .await
            .map_err(transport)?
            .map_err(transport)?;
        let supported = match self.answer(client, id, BLOCK_TIMEOUT).await {
            Some(Ok(r)) => r.code == Code::Content && r.observe.is_some(),
            Some(Err(e)) => return Err(transport(format!("observe {path}: {e}"))),
            None => false,
        };
        if supported {
            self.set_observation(Some(id));
        } else {
            self.observe_unsupported.store(true, Ordering::SeqCst);
            let _ = client.handle.with(move |ep, now| ep.cancel(now, id)).await;
        }
        Ok(supported)
    }

    /// Resolves when the observed index changed; never while nothing is observed.
    pub async fn changed(&self) {
        loop {
            if self.change_pending.swap(false, Ordering::SeqCst) {
                return;
            }
            if !self.observing() {
                return std::future::pending().await;
            }
            let Ok(mut guard) = self.client().await else { return std::future::pending().await };
            let Some(client) = guard.as_mut() else { return std::future::pending().await };
            match client.events.recv().await {
                Some(event) => {
                    let _ = self.sort(event, None);
                }
                None => return std::future::pending().await,
            }
        }
    }

    async fn start(&self) -> Result<Client, FetchError> {
        let host = self.base.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = self.base.port().unwrap_or(DEFAULT_PORT);
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| transport(format!("cannot resolve {host}: {e}")))?
            .next()
            .ok_or_else(|| transport(format!("{host} has no address")))?;
        let local: SocketAddr =
            if addr.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().map_err(|e| transport(format!("{e}")))?;
        let endpoint = Endpoint::new(Config::default(), Router::new());
        let (shell, handle, events) = udp::bind(&[local], endpoint).await.map_err(transport)?;
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            shell.run(token).await;
        });
        Ok(Client { handle, events, peer: UdpPeer { socket: 0, addr }, stop })
    }

    fn path(&self, path: &str) -> String {
        format!("{}/{path}", self.base.path().trim_end_matches('/'))
    }

    /// The running client, started on first use.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, FetchError> {
        let mut guard = self.client.lock().await;
        if guard.is_none() {
            *guard = Some(self.start().await?);
        }
        Ok(guard)
    }

    /// One block-wise GET, at most `max` bytes.
    async fn fetch(&self, path: &str, max: usize) -> Result<Vec<u8>, FetchError> {
        let mut guard = self.client().await?;
        let Some(client) = guard.as_mut() else {
            return Err(transport("CoAP client did not start"));
        };
        let peer = client.peer;
        let request = Request::get(&self.path(path));
        let opts = FetchOptions { szx: SZX, max_size: max };
        let id = client
            .handle
            .with(move |ep, now| ep.start_fetch(now, peer, request, opts))
            .await
            .map_err(transport)?
            .map_err(transport)?;
        let result = match self.answer(client, id, FETCH_TIMEOUT).await {
            Some(r) => r,
            None => {
                let _ = client.handle.with(move |ep, now| ep.cancel(now, id)).await;
                return Err(transport(format!("GET {path}: no answer within {FETCH_TIMEOUT:?}")));
            }
        };
        match result {
            Ok(r) if r.code == Code::Content => Ok(r.payload.to_vec()),
            Ok(r) if r.code == Code::NotFound => Err(FetchError::NotFound),
            Ok(r) => Err(transport(format!("GET {path}: {:?}", r.code))),
            Err(RequestError::TooLarge(limit)) => Err(FetchError::TooLarge { limit: limit as u64 }),
            Err(e) => Err(transport(format!("GET {path}: {e}"))),
        }
    }

    pub async fn get_small(&self, path: &str, max: usize) -> Result<Small, FetchError> {
        Ok(Small::Body { bytes: self.fetch(path, max).await?, etag: None })
    }

    /// One Block2 request: block `num` of size `szx`.
    async fn block(&self, client: &mut Client, path: &str, num: u32, szx: u8) -> Result<Response, FetchError> {
        let peer = client.peer;
        let mut request = Request::get(path);
        request.block2 = Some(BlockOpt { num, more: false, szx });
        let id = client
            .handle
            .with(move |ep, now| ep.start_request(now, peer, request))
            .await
            .map_err(transport)?
            .map_err(transport)?;
        match self.answer(client, id, BLOCK_TIMEOUT).await {
            Some(Ok(response)) => Ok(response),
            Some(Err(e)) => Err(transport(format!("GET {path} block {num}: {e}"))),
            None => {
                let _ = client.handle.with(move |ep, now| ep.cancel(now, id)).await;
                Err(transport(format!("GET {path} block {num}: no answer within {BLOCK_TIMEOUT:?}")))
            }
        }
    }

    /// Downloads into `writer` block by block, from the block after the last one a previous
    /// attempt wrote.
    pub async fn download(&self, path: &str, mut writer: BlobWriter) -> Result<Landed, FetchError> {
        writer.keep_partial_on_drop();
        let path = self.path(path);
        let mut szx = SZX;
        let mut size = size_of_szx(szx) as u64;
        // A partial block at the end may be torn: start again at its beginning.
        let boundary = writer.written() / size * size;
        let mut writer = blocking(writer, move |w| w.rewind_to(boundary)).await?;
        if writer.written() > 0 {
            tracing::debug!(path, from = writer.written(), "repo: resuming a CoAP download");
        }
        let mut guard = self.client().await?;
        let Some(client) = guard.as_mut() else {
            return Err(transport("CoAP client did not start"));
        };
        loop {
            let num = u32::try_from(writer.written() / size).map_err(|_| transport("block number overflow"))?;
            let response = self.block(client, &path, num, szx).await?;
            if response.code == Code::NotFound {
                return Err(FetchError::NotFound);
            }
            if response.code != Code::Content {
                return Err(transport(format!("GET {path} block {num}: {:?}", response.code)));
            }
            let (offset, more) = match response.block2 {
                Some(b) => {
                    // The server may pick smaller blocks (RFC 7959 §2.4); later requests follow it.
                    if b.szx < szx {
                        szx = b.szx;
                        size = size_of_szx(szx) as u64;
                    }
                    (u64::from(b.num) * size_of_szx(b.szx) as u64, b.more)
                }
                // No Block2: the whole representation fits one message.
                None if writer.written() == 0 => (0, false),
                None => return Err(transport(format!("GET {path}: the server ignored Block2 {num}"))),
            };
            if offset != writer.written() {
                return Err(transport(format!(
                    "GET {path}: block at byte {offset}, asked for byte {}",
                    writer.written()
                )));
            }
            let payload = response.payload;
            // Every block but the last is full (RFC 7959 §2.2); a short one would be asked for
            // again at the same offset, for ever.
            if more && payload.len() != size_of_szx(response.block2.map_or(szx, |b| b.szx)) {
                return Err(transport(format!(
                    "GET {path}: block {num} holds {} bytes but says more follow",
                    payload.len()
                )));
            }
            writer = blocking(writer, move |w| w.write(&payload)).await?;
            if !more {
                break;
            }
        }
        Ok(tokio::task::spawn_blocking(move || writer.finish()).await.map_err(join_err)??)
    }
}

/// Runs `f` on the writer on a blocking thread (file I/O) and hands the writer back.
async fn blocking(
    mut writer: BlobWriter,
    f: impl FnOnce(&mut BlobWriter) -> Result<(), CacheError> + Send + 'static,
) -> Result<BlobWriter, FetchError> {
    tokio::task::spawn_blocking(move || f(&mut writer).map(|()| writer)).await.map_err(join_err)?.map_err(Into::into)
}
