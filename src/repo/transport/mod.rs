//! The I/O shells that move bytes from a repository: a folder, HTTP(S) or CoAP. They know
//! nothing of trust; they stream into a [`BlobWriter`], which checks size and digest.

mod coap;
mod dir;
mod http;

use super::cache::{BlobWriter, CacheError, Landed};
use crate::config::RepositoryUrl;

/// A small fetch (index, envelope), held in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Small {
    /// The server confirmed the ETag we sent.
    Unchanged,
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("not found in the repository")]
    NotFound,
    #[error("larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Transport(String),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// Where a repository's bytes come from.
pub enum Transport {
    Dir(dir::DirSource),
    Http(http::HttpSource),
    Coap(coap::CoapSource),
}

impl Transport {
    /// `max_rate` is the upstream bandwidth limit in bytes per second (HTTP only).
    pub fn new(url: &RepositoryUrl, max_rate: Option<u64>) -> Result<Transport, String> {
        match url {
            RepositoryUrl::Dir(path) => Ok(Transport::Dir(dir::DirSource::new(path.clone()))),
            RepositoryUrl::Remote(url) => match url.scheme() {
                "http" | "https" => Ok(Transport::Http(http::HttpSource::new(url.clone(), max_rate)?)),
                "coap" => Ok(Transport::Coap(coap::CoapSource::new(url.clone())?)),
                other => Err(format!("unsupported repository scheme `{other}`")),
            },
        }
    }

    /// Fetches `path` (relative to the repository root) whole, refusing more than `max`
    /// bytes; with `etag`, a conditional GET where the transport supports one.
    pub async fn get_small(&self, path: &str, max: usize, etag: Option<&str>) -> Result<Small, FetchError> {
        super::index::check_path(path).map_err(|e| FetchError::Transport(e.to_string()))?;
        match self {
            Transport::Dir(d) => d.get_small(path, max).await,
            Transport::Http(h) => h.get_small(path, max, etag).await,
            Transport::Coap(c) => c.get_small(path, max).await,
        }
    }

    /// Streams `path` into `writer`, resuming from [`BlobWriter::written`] where the
    /// transport can. On a transport error the writer's partial file is kept for a resume.
    pub async fn download(&self, path: &str, writer: BlobWriter) -> Result<Landed, FetchError> {
        super::index::check_path(path).map_err(|e| FetchError::Transport(e.to_string()))?;
        match self {
            Transport::Dir(d) => d.download(path, writer).await,
            Transport::Http(h) => h.download(path, writer).await,
            Transport::Coap(c) => c.download(path, writer).await,
        }
    }
}

impl Transport {
    /// Asks the server to notify changes of `path` (CoAP Observe); false where the transport
    /// or the server cannot, and polling alone finds changes.
    pub async fn observe(&self, path: &str) -> bool {
        match self {
            Transport::Coap(c) => c.observe(path).await.unwrap_or_else(|e| {
                tracing::debug!("repo: cannot observe {path}: {e}");
                false
            }),
            Transport::Dir(_) | Transport::Http(_) => false,
        }
    }

    /// Whether an observation is in force.
    pub fn observing(&self) -> bool {
        matches!(self, Transport::Coap(c) if c.observing())
    }

    /// Resolves when an observed resource changed; never without an observation.
    pub async fn changed(&self) {
        match self {
            Transport::Coap(c) => c.changed().await,
            Transport::Dir(_) | Transport::Http(_) => std::future::pending().await,
        }
    }
}

fn join_err(e: tokio::task::JoinError) -> FetchError {
    FetchError::Cache(CacheError::Worker(e.to_string()))
}
