//! HTTP(S) repositories through ureq (blocking, rustls with ring and the webpki roots),
//! driven from `spawn_blocking`: the body streams straight into the blob writer.
//!
//! Conditional GET with `If-None-Match` for the index; resumable downloads with
//! `Range: bytes=N-` from a `.partial` file (a server that ignores Range sends 200 and we
//! start over); an optional bandwidth limit for slow uplinks.

use std::io::Read;
use std::time::{Duration, Instant};

use url::Url;

use super::{join_err, FetchError, Small};
use crate::repo::cache::{BlobWriter, Landed};

const CHUNK: usize = 16 * 1024;

pub struct HttpSource {
    base: Url,
    agent: ureq::Agent,
    /// Bytes per second, upstream.
    max_rate: Option<u64>,
}

fn transport(e: impl std::fmt::Display) -> FetchError {
    FetchError::Transport(e.to_string())
}

impl HttpSource {
    pub fn new(mut base: Url, max_rate: Option<u64>) -> Result<HttpSource, String> {
        // Url::join replaces the last segment unless the base ends in '/'.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            // An idle timeout, not a total one: large payloads over a slow uplink are fine,
            // a server that stops sending is not.
            .timeout_per_read(Some(Duration::from_secs(60)))
            .max_redirects(5)
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(HttpSource { base, agent, max_rate: max_rate.filter(|r| *r > 0) })
    }

    fn url(&self, path: &str) -> Result<String, FetchError> {
        self.base.join(path).map(String::from).map_err(|e| transport(format!("bad path {path}: {e}")))
    }

    pub async fn get_small(&self, path: &str, max: usize, etag: Option<&str>) -> Result<Small, FetchError> {
        let url = self.url(path)?;
        let agent = self.agent.clone();
        let etag = etag.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            let mut req = agent.get(&url);
            if let Some(tag) = &etag {
                req = req.header("If-None-Match", tag);
            }
            let resp = req.call().map_err(|e| transport(format!("GET {url}: {e}")))?;
            match resp.status().as_u16() {
                200 => {}
                304 if etag.is_some() => return Ok(Small::Unchanged),
                404 | 410 => return Err(FetchError::NotFound),
                s => return Err(transport(format!("GET {url}: HTTP {s}"))),
            }
            let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let mut bytes = Vec::new();
            resp.into_body()
                .into_reader()
                .take(max as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| transport(format!("GET {url}: {e}")))?;
            if bytes.len() > max {
                return Err(FetchError::TooLarge { limit: max as u64 });
            }
            Ok(Small::Body { bytes, etag })
        })
        .await
        .map_err(join_err)?
    }

    pub async fn download(&self, path: &str, writer: BlobWriter) -> Result<Landed, FetchError> {
        let url = self.url(path)?;
        let agent = self.agent.clone();
        let max_rate = self.max_rate;
        tokio::task::spawn_blocking(move || stream(&agent, &url, writer, max_rate)).await.map_err(join_err)?
    }
}

fn stream(agent: &ureq::Agent, url: &str, mut writer: BlobWriter, max_rate: Option<u64>) -> Result<Landed, FetchError> {
    let offset = writer.written();
    let mut req = agent.get(url);
    if offset > 0 {
        req = req.header("Range", format!("bytes={offset}-"));
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(e) => {
            writer.suspend();
            return Err(transport(format!("GET {url}: {e}")));
        }
    };
    match resp.status().as_u16() {
        200 => {
            if offset > 0 {
                tracing::debug!(url, "repo: server ignored Range; downloading from the start");
                writer.reset()?;
            }
        }
        206 => {
            let start = resp
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if start != Some(offset) {
                // Not the piece we asked for: start over next time.
                writer.reset()?;
                writer.suspend();
                return Err(transport(format!("GET {url}: 206 for the wrong range ({start:?}, asked {offset})")));
            }
        }
        416 => {
            // Our partial is no prefix of what the server has now.
            writer.reset()?;
            writer.suspend();
            return Err(transport(format!("GET {url}: range {offset}- not satisfiable; restarting")));
        }
        404 | 410 => return Err(FetchError::NotFound),
        s => {
            writer.suspend();
            return Err(transport(format!("GET {url}: HTTP {s}")));
        }
    }
    let mut body = resp.into_body().into_reader();
    let mut buf = vec![0u8; CHUNK];
    let started = Instant::now();
    let mut received = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                // The connection broke: keep what we have and resume with Range later.
                writer.suspend();
                return Err(transport(format!("GET {url}: {e}")));
            }
        };
        writer.write(&buf[..n])?;
        received += n as u64;
        if let Some(rate) = max_rate {
            let due = Duration::from_secs_f64(received as f64 / rate as f64);
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
    }
    Ok(writer.finish()?)
}
