//! CoAP repositories (`coap://host[:port]/base`), the layout `aiocoap-fileserver` serves for
//! RIOT: block-wise GETs through ferry's own endpoint over its UDP shell, started on first use.
//!
//! The endpoint's fetch bounds the body at the writer's signed size, so an endless resource
//! is cut off at the first block past it. Downloads restart from block 0 (no resume).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::{join_err, FetchError, Small};
use crate::coap::udp::{self, ShellHandle, UdpPeer};
use crate::coap::{Code, Config, Endpoint, Event, FetchOptions, Request, RequestError, Router};
use crate::repo::cache::{BlobWriter, CacheError, Landed};

const DEFAULT_PORT: u16 = 5683;
/// 1024-byte blocks upstream: the repository is not a constrained device.
const SZX: u8 = 6;
/// A whole fetch gives up after this long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(600);

pub struct CoapSource {
    base: Url,
    client: Mutex<Option<Client>>,
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
        Ok(CoapSource { base, client: Mutex::new(None) })
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

    /// One block-wise GET, at most `max` bytes.
    async fn fetch(&self, path: &str, max: usize) -> Result<Vec<u8>, FetchError> {
        let mut guard = self.client.lock().await;
        if guard.is_none() {
            *guard = Some(self.start().await?);
        }
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
        let wait = async {
            while let Some(event) = client.events.recv().await {
                match event {
                    Event::Response { id: got, response, .. } if got == id => return Ok(response),
                    Event::Failed { id: got, error, .. } if got == id => return Err(error),
                    _ => {}
                }
            }
            Err(RequestError::Encode("CoAP shell stopped".into()))
        };
        let result = match tokio::time::timeout(FETCH_TIMEOUT, wait).await {
            Ok(r) => r,
            Err(_) => {
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

    pub async fn download(&self, path: &str, mut writer: BlobWriter) -> Result<Landed, FetchError> {
        let limit = writer.limit();
        let body = match self.fetch(path, usize::try_from(limit).unwrap_or(usize::MAX)).await {
            Ok(b) => b,
            Err(FetchError::TooLarge { .. }) => {
                return Err(CacheError::TooLarge { what: writer.what().to_owned(), limit }.into())
            }
            Err(e) => return Err(e),
        };
        tokio::task::spawn_blocking(move || {
            writer.reset()?;
            writer.write(&body)?;
            Ok(writer.finish()?)
        })
        .await
        .map_err(join_err)?
    }
}
