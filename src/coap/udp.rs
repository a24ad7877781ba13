//! The tokio shell: kernel UDP sockets driving one [`Endpoint`].
//!
//! One task owns the endpoint and its sockets. It drains transmits and events, keeps a single
//! sleep armed at [`Endpoint::poll_timeout`] (reset only when that deadline changes), and
//! otherwise waits for a datagram on any socket, a command from a [`ShellHandle`] or shutdown.
//! Datagrams are read straight into one buffer by that task: no reader tasks, channel hop or
//! copy per datagram (the profile of `scripts/bench-coap.sh` showed them per block).

use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::endpoint::{Endpoint, Event};

/// A peer over kernel UDP: which of our sockets, and the remote address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UdpPeer {
    /// Index into the addresses given to [`bind`].
    pub socket: usize,
    pub addr: SocketAddr,
}

/// Work to run on the endpoint inside the shell's task.
pub type Command = Box<dyn FnOnce(&mut Endpoint<UdpPeer>, Instant) + Send>;

#[derive(Debug, Error)]
pub enum ShellError {
    #[error("cannot bind CoAP socket on {addr}: {source} (is the port in use, or the address not configured?)")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("the CoAP shell has stopped")]
    Stopped,
}

const EVENT_QUEUE: usize = 1024;
const COMMAND_QUEUE: usize = 64;
/// Large enough for any UDP payload: a truncated datagram would parse as garbage.
const RECV_BUFFER: usize = 65_536;

/// The shell, before it runs.
pub struct UdpShell {
    sockets: Vec<UdpSocket>,
    endpoint: Endpoint<UdpPeer>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event<UdpPeer>>,
}

/// Talks to a running shell from other tasks.
#[derive(Clone)]
pub struct ShellHandle {
    commands: mpsc::Sender<Command>,
    local: Vec<SocketAddr>,
}

impl ShellHandle {
    /// The bound addresses (with the kernel's port when 0 was asked).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    /// Runs `f` on the endpoint with the current time and returns its result.
    pub async fn with<R, F>(&self, f: F) -> Result<R, ShellError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Endpoint<UdpPeer>, Instant) -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let cmd: Command = Box::new(move |ep, now| {
            let _ = tx.send(f(ep, now));
        });
        self.commands.send(cmd).await.map_err(|_| ShellError::Stopped)?;
        rx.await.map_err(|_| ShellError::Stopped)
    }
}

/// Binds one socket per address. Returns the shell to run, a handle, and the event stream
/// (bounded: events are dropped, and counted, if nobody reads them).
pub async fn bind(
    addrs: &[SocketAddr],
    endpoint: Endpoint<UdpPeer>,
) -> Result<(UdpShell, ShellHandle, mpsc::Receiver<Event<UdpPeer>>), ShellError> {
    let mut sockets = Vec::with_capacity(addrs.len());
    let mut local = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let s = UdpSocket::bind(addr).await.map_err(|source| ShellError::Bind { addr: *addr, source })?;
        local.push(s.local_addr().map_err(|source| ShellError::Bind { addr: *addr, source })?);
        sockets.push(s);
    }
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let shell = UdpShell { sockets, endpoint, commands: cmd_rx, events: ev_tx };
    Ok((shell, ShellHandle { commands: cmd_tx, local }, ev_rx))
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl UdpShell {
    /// Runs until `shutdown` is cancelled; returns the endpoint (for its metrics).
    pub async fn run(mut self, shutdown: CancellationToken) -> Endpoint<UdpPeer> {
        let mut buf = vec![0u8; RECV_BUFFER];
        let far = || tokio::time::Instant::now() + Duration::from_secs(86_400);
        let sleep = tokio::time::sleep_until(far());
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        loop {
            self.flush().await;
            let next = self.endpoint.poll_timeout();
            if next != armed {
                armed = next;
                sleep.as_mut().reset(next.map_or_else(far, tokio::time::Instant::from_std));
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                (socket, addr, len) = std::future::poll_fn(|cx| poll_recv_any(&self.sockets, &mut buf, cx)) => {
                    let datagram = buf.get(..len).unwrap_or_default();
                    self.endpoint.handle_datagram(now(), UdpPeer { socket, addr }, datagram);
                }
                Some(cmd) = self.commands.recv() => cmd(&mut self.endpoint, now()),
                _ = &mut sleep, if armed.is_some() => {
                    self.endpoint.handle_timeout(now());
                    // Force a re-arm even if the endpoint reports the same deadline again.
                    armed = None;
                }
            }
        }
        self.endpoint
    }

    async fn flush(&mut self) {
        while let Some(t) = self.endpoint.poll_transmit(now()) {
            let Some(sock) = self.sockets.get(t.peer.socket) else {
                continue;
            };
            if let Err(e) = sock.send_to(&t.bytes, t.peer.addr).await {
                tracing::debug!(peer = %t.peer.addr, error = %e, "coap: send_to failed");
            }
        }
        while let Some(e) = self.endpoint.poll_event() {
            if self.events.try_send(e).is_err() {
                tracing::debug!("coap: event dropped (receiver full or gone)");
            }
        }
    }
}

/// Ready when any socket has a datagram: its index, sender and length in `buf`. Receive errors
/// (such as ICMP errors surfacing on the socket) are logged and the socket polled again.
fn poll_recv_any(sockets: &[UdpSocket], buf: &mut [u8], cx: &mut Context<'_>) -> Poll<(usize, SocketAddr, usize)> {
    for (i, sock) in sockets.iter().enumerate() {
        loop {
            let mut read = ReadBuf::new(buf);
            match sock.poll_recv_from(cx, &mut read) {
                Poll::Ready(Ok(from)) => return Poll::Ready((i, from, read.filled().len())),
                Poll::Ready(Err(e)) => tracing::debug!(error = %e, "coap: recv_from failed"),
                Poll::Pending => break,
            }
        }
    }
    Poll::Pending
}
