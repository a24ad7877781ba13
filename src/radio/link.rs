//! The tokio shell around [`Client`]: opens the radio URL, moves bytes between the device and
//! the client, keeps one sleep for the client's next deadline, and reopens the device with
//! backoff when it goes away. All protocol decisions stay in the client.

use std::collections::HashMap;
use std::future::{pending, Future};
use std::io;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant as TokioInstant;
use tokio_util::sync::CancellationToken;

use super::client::{
    Client, ClientError, Event, LinkState, Op, RcpInfo, RxFrame, Settings, SrcAddr, TxAck, TxError, TxOptions,
    MAX_TRANSMIT_LEN,
};
use super::metrics::RadioMetrics;
use super::pty;
use crate::config::RadioUrl;

/// First wait before reopening a device that failed; doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// Longest wait between reopen attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Received frames buffered for the daemon before new ones are dropped (and counted).
pub const RX_CHANNEL_LEN: usize = 256;
/// Commands (transmissions, configuration) buffered towards the link task.
const CMD_CHANNEL_LEN: usize = 64;
/// A write that does not finish in this time means the line is stuck (an RCP that stopped
/// reading behind hardware flow control): the device is reopened.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// A byte stream to an RCP: a serial port, a pty master, or an in-memory pipe in tests.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// An open link to an RCP.
pub struct Connection {
    pub io: Box<dyn Io>,
    /// The RCP program for forkpty URLs; killed when the connection is dropped.
    pub child: Option<Child>,
}

impl Connection {
    pub fn new(io: impl Io + 'static) -> Connection {
        Connection { io: Box::new(io), child: None }
    }
}

/// The future an [`Opener`] returns.
pub type OpenFuture = Pin<Box<dyn Future<Output = io::Result<Connection>> + Send>>;
/// Opens the device each time the link (re)connects.
pub type Opener = Box<dyn FnMut() -> OpenFuture + Send>;

/// Why [`spawn`] refused a URL.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(
        "radio URL `{0}` names the simulator; ferryd runs it with src/sim, not over a serial link — use spinel+hdlc+uart:// or spinel+hdlc+forkpty:// here"
    )]
    Simulated(String),
}

/// What the daemon sees of the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStatus {
    /// Handshake done and the RCP answering.
    pub up: bool,
    /// The client's state; `Initializing` also while the device is being (re)opened.
    pub state: LinkState,
    /// One line for people: why it is down, or what RCP is up.
    pub detail: String,
    /// What the RCP reported in its last handshake.
    pub info: Option<RcpInfo>,
    /// Unsolicited RCP resets since start.
    pub resets: u64,
}

enum Cmd {
    Tx { psdu: Vec<u8>, opts: TxOptions, reply: oneshot::Sender<Result<TxAck, TxError>> },
    Op { op: Op, reply: oneshot::Sender<Result<(), ClientError>> },
}

/// The daemon's handle on the radio link. Cheap to clone; the link task stops when the
/// shutdown token is cancelled or every handle is dropped.
/// The outcome of a transmission started with [`Radio::start_frame`].
#[derive(Debug)]
pub struct TxReceipt(oneshot::Receiver<Result<TxAck, TxError>>);

impl TxReceipt {
    /// Waits for the TX-done; a link task that went away reports `Aborted`.
    pub async fn done(&mut self) -> Result<TxAck, TxError> {
        (&mut self.0).await.unwrap_or(Err(TxError::Aborted))
    }
}

#[derive(Clone)]
pub struct Radio {
    cmds: mpsc::Sender<Cmd>,
    status: watch::Receiver<LinkStatus>,
}

impl Radio {
    /// Transmits `psdu` (MAC frame with 2 FCS placeholder bytes, 2..=127 bytes) and waits for
    /// the TX-done: the ACK with its Frame Pending bit, or why it failed.
    pub async fn send_frame(&self, psdu: &[u8], opts: TxOptions) -> Result<TxAck, TxError> {
        let (reply, rx) = oneshot::channel();
        if self.cmds.send(Cmd::Tx { psdu: psdu.to_vec(), opts, reply }).await.is_err() {
            return Err(TxError::Aborted);
        }
        rx.await.unwrap_or(Err(TxError::Aborted))
    }

    /// Hands `psdu` to the radio now, in call order, without waiting: the TX-done arrives on
    /// the returned channel. For a shell that keeps several transmissions in flight (the
    /// order of `send_frame` calls from separate tasks is not kept). Fails when the command
    /// queue is full or the link task is gone.
    pub fn start_frame(&self, psdu: &[u8], opts: TxOptions) -> Result<TxReceipt, TxError> {
        let (reply, rx) = oneshot::channel();
        match self.cmds.try_send(Cmd::Tx { psdu: psdu.to_vec(), opts, reply }) {
            Ok(()) => Ok(TxReceipt(rx)),
            Err(mpsc::error::TrySendError::Full(_)) => Err(TxError::QueueFull(CMD_CHANNEL_LEN)),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(TxError::Aborted),
        }
    }

    /// Switches the radio channel (kept across RCP resets).
    pub async fn set_channel(&self, channel: u8) -> Result<(), ClientError> {
        self.op(Op::SetChannel(channel)).await
    }

    /// Adds a sleepy child to the source-match table (kept across RCP resets).
    pub async fn src_match_insert(&self, addr: SrcAddr) -> Result<(), ClientError> {
        self.op(Op::SrcMatchInsert(addr)).await
    }

    /// Removes a source-match entry.
    pub async fn src_match_remove(&self, addr: SrcAddr) -> Result<(), ClientError> {
        self.op(Op::SrcMatchRemove(addr)).await
    }

    /// Any configuration change ([`Op`]).
    pub async fn op(&self, op: Op) -> Result<(), ClientError> {
        let (reply, rx) = oneshot::channel();
        if self.cmds.send(Cmd::Op { op, reply }).await.is_err() {
            return Err(ClientError::Closed);
        }
        rx.await.unwrap_or(Err(ClientError::Closed))
    }

    /// The link state, as a watch.
    pub fn state(&self) -> watch::Receiver<LinkStatus> {
        self.status.clone()
    }

    /// Waits until the link is up (returns at once if it is). Returns `false` if the link task
    /// ended first.
    pub async fn wait_ready(&self) -> bool {
        let mut status = self.status.clone();
        let ready = status.wait_for(|s| s.up).await.is_ok();
        ready
    }
}

/// Opens `url` in a background task and returns the handle and the received frames. Must be
/// called inside a tokio runtime.
pub fn spawn(
    url: &RadioUrl,
    settings: Settings,
    metrics: RadioMetrics,
    shutdown: CancellationToken,
) -> Result<(Radio, mpsc::Receiver<RxFrame>), LinkError> {
    let opener = opener_for(url)?;
    Ok(spawn_with(opener, url.to_string(), settings, metrics, shutdown))
}

/// Like [`spawn`] with a custom opener (tests use in-memory pipes).
pub fn spawn_with(
    opener: Opener,
    name: String,
    settings: Settings,
    metrics: RadioMetrics,
    shutdown: CancellationToken,
) -> (Radio, mpsc::Receiver<RxFrame>) {
    let (cmd_tx, cmd_rx) = mpsc::channel(CMD_CHANNEL_LEN);
    let (rx_tx, rx_rx) = mpsc::channel(RX_CHANNEL_LEN);
    let client = Client::new(settings, now());
    let initial = LinkStatus {
        up: false,
        state: client.state().clone(),
        detail: format!("opening {name}"),
        info: None,
        resets: 0,
    };
    let (status_tx, status_rx) = watch::channel(initial);
    metrics.rcp_up.set(0);
    let driver = Driver {
        opener,
        name,
        client,
        metrics,
        status: status_tx,
        rx: rx_tx,
        cmds: cmd_rx,
        shutdown,
        tx_replies: HashMap::new(),
        op_replies: HashMap::new(),
        resets: 0,
        last_stats: Default::default(),
        down_reason: None,
    };
    tokio::spawn(driver.run());
    (Radio { cmds: cmd_tx, status: status_rx }, rx_rx)
}

/// The opener for a serial or forkpty URL.
pub fn opener_for(url: &RadioUrl) -> Result<Opener, LinkError> {
    match url.clone() {
        RadioUrl::Uart { device, baudrate, flow_control } => Ok(Box::new(move || {
            let device = device.clone();
            Box::pin(async move {
                let flow =
                    if flow_control { tokio_serial::FlowControl::Hardware } else { tokio_serial::FlowControl::None };
                let builder = tokio_serial::new(device.to_string_lossy(), baudrate).flow_control(flow);
                let port = tokio_serial::SerialStream::open(&builder).map_err(|e| {
                    io::Error::new(io::ErrorKind::NotFound, format!("cannot open {}: {e}", device.display()))
                })?;
                Ok(Connection::new(port))
            })
        })),
        RadioUrl::Forkpty { program, args } => Ok(Box::new(move || {
            let (program, args) = (program.clone(), args.clone());
            Box::pin(async move {
                let (io, child) = pty::spawn_on_pty(&program, &args)?;
                Ok(Connection { io: Box::new(io), child: Some(child) })
            })
        })),
        sim @ RadioUrl::Sim { .. } => Err(LinkError::Simulated(sim.to_string())),
    }
}

fn now() -> std::time::Instant {
    TokioInstant::now().into_std()
}

/// How a connection ended.
enum Ended {
    Shutdown,
    /// The device went away or the client gave up; `was_up` if it reached Ready meanwhile.
    Lost {
        why: String,
        was_up: bool,
    },
}

struct Driver {
    opener: Opener,
    name: String,
    client: Client,
    metrics: RadioMetrics,
    status: watch::Sender<LinkStatus>,
    rx: mpsc::Sender<RxFrame>,
    cmds: mpsc::Receiver<Cmd>,
    shutdown: CancellationToken,
    tx_replies: HashMap<super::client::TxId, oneshot::Sender<Result<TxAck, TxError>>>,
    op_replies: HashMap<super::client::OpId, oneshot::Sender<Result<(), ClientError>>>,
    resets: u64,
    last_stats: super::client::Stats,
    /// Why the link last went down; shown until the RCP is up again.
    down_reason: Option<String>,
}

impl Driver {
    async fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let opened = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                r = (self.opener)() => r,
            };
            let why = match opened {
                Ok(conn) => {
                    tracing::info!("radio: opened {}", self.name);
                    match self.serve(conn).await {
                        Ended::Shutdown => break,
                        Ended::Lost { why, was_up } => {
                            if was_up {
                                backoff = BACKOFF_MIN;
                            }
                            why
                        }
                    }
                }
                Err(e) => format!("cannot open {}: {e}", self.name),
            };
            tracing::warn!("radio: {why}; reopening in {backoff:?}");
            self.down_reason = Some(why.clone());
            // Forget the old connection: transmissions in flight fail, settings stay recorded.
            self.client.restart(now());
            self.drain_events();
            self.metrics.rcp_up.set(0);
            self.publish(format!("{why}; reopening in {} ms", backoff.as_millis()));
            if !self.idle(backoff).await {
                break;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        self.metrics.rcp_up.set(0);
        self.publish("stopped".into());
    }

    /// Waits `dur` while answering commands (the client refuses transmissions and records
    /// configuration). `false` on shutdown.
    async fn idle(&mut self, dur: Duration) -> bool {
        let until = TokioInstant::now() + dur;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return false,
                _ = tokio::time::sleep_until(until) => return true,
                cmd = self.cmds.recv() => match cmd {
                    None => return false,
                    Some(cmd) => {
                        self.handle_cmd(cmd);
                        self.drain_events();
                    }
                },
            }
        }
    }

    async fn serve(&mut self, conn: Connection) -> Ended {
        let Connection { mut io, mut child } = conn;
        self.client.restart(now());
        let mut rbuf = vec![0u8; 4096];
        let mut wbuf = vec![0u8; MAX_TRANSMIT_LEN];
        let mut was_up = false;
        loop {
            let mut wrote = false;
            while let Some(n) = self.client.poll_transmit(now(), &mut wbuf) {
                if let Err(why) = write_with_timeout(&mut io, &wbuf[..n], &self.name).await {
                    return Ended::Lost { why, was_up };
                }
                wrote = true;
            }
            if wrote {
                match tokio::time::timeout(WRITE_TIMEOUT, io.flush()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Ended::Lost { why: format!("flush to {} failed: {e}", self.name), was_up },
                    Err(_) => return Ended::Lost { why: format!("flush to {} stalled", self.name), was_up },
                }
            }
            self.drain_events();
            match self.client.state() {
                LinkState::Ready => was_up = true,
                LinkState::Failed(e) => return Ended::Lost { why: e.to_string(), was_up },
                LinkState::Initializing { .. } => {}
            }
            let deadline = self.client.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(TokioInstant::from_std(d)).await,
                    None => pending().await,
                }
            };
            let exited = async {
                match child.as_mut() {
                    Some(c) => c.wait().await,
                    None => pending().await,
                }
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => return Ended::Shutdown,
                r = io.read(&mut rbuf) => match r {
                    Ok(0) => {
                        let why = format!("{} closed (EOF): unplugged, or the RCP program exited", self.name);
                        return Ended::Lost { why, was_up };
                    }
                    Ok(n) => self.client.handle_input(now(), &rbuf[..n]),
                    Err(e) => return Ended::Lost { why: format!("read from {} failed: {e}", self.name), was_up },
                },
                cmd = self.cmds.recv() => match cmd {
                    None => return Ended::Shutdown,
                    Some(cmd) => self.handle_cmd(cmd),
                },
                status = exited => {
                    let why = match status {
                        Ok(s) => format!("the RCP program exited ({s})"),
                        Err(e) => format!("the RCP program could not be waited for: {e}"),
                    };
                    return Ended::Lost { why, was_up };
                }
                _ = sleep => self.client.handle_timeout(now()),
            }
        }
    }

    fn handle_cmd(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Tx { psdu, opts, reply } => match self.client.transmit(now(), &psdu, opts) {
                Ok(id) => {
                    self.tx_replies.insert(id, reply);
                }
                Err(e) => {
                    self.metrics.frame("tx", tx_label(&Err(e.clone())));
                    let _ = reply.send(Err(e));
                }
            },
            Cmd::Op { op, reply } => match self.client.submit(now(), op) {
                Ok(id) => {
                    self.op_replies.insert(id, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
        }
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.client.poll_event() {
            match event {
                Event::State(state) => {
                    let up = state == LinkState::Ready;
                    self.metrics.rcp_up.set(i64::from(up));
                    if up {
                        self.down_reason = None;
                    }
                    let detail = match (&state, self.client.info(), &self.down_reason) {
                        (LinkState::Ready, Some(info), _) => format!(
                            "{} on {}, {} transmission(s) at once",
                            info.ncp_version,
                            self.name,
                            info.tx_window()
                        ),
                        (_, _, Some(why)) => format!("{why}; {state}"),
                        _ => state.to_string(),
                    };
                    tracing::info!("radio: {detail}");
                    self.publish(detail);
                }
                Event::Received(frame) => match self.rx.try_send(frame) {
                    Ok(()) => self.metrics.frame("rx", "ok"),
                    Err(_) => self.metrics.frame("rx", "dropped"),
                },
                Event::TxDone { id, result } => {
                    self.metrics.frame("tx", tx_label(&result));
                    if let Some(reply) = self.tx_replies.remove(&id) {
                        let _ = reply.send(result);
                    }
                }
                Event::OpDone { id, result } => {
                    if let Some(reply) = self.op_replies.remove(&id) {
                        let _ = reply.send(result);
                    }
                }
                Event::RcpReset { reason } => {
                    self.resets += 1;
                    self.metrics.rcp_resets_total.inc();
                    tracing::warn!("radio: RCP reset on its own ({reason:?}); re-initialising");
                }
                Event::SrcMatchRestoreFailed { addr, status } => {
                    tracing::warn!("radio: could not restore source-match entry {addr:?}: {status:?}");
                }
            }
        }
        let stats = self.client.stats();
        for (label, new, old) in [
            ("malformed", stats.rx_malformed, self.last_stats.rx_malformed),
            ("dropped", stats.rx_dropped, self.last_stats.rx_dropped),
        ] {
            if new > old {
                self.metrics.frames_total.with_label_values(&["rx", label]).inc_by(new - old);
            }
        }
        self.last_stats = stats;
    }

    fn publish(&self, detail: String) {
        let state = self.client.state().clone();
        self.status.send_replace(LinkStatus {
            up: state == LinkState::Ready,
            state,
            detail,
            info: self.client.info().cloned(),
            resets: self.resets,
        });
    }
}

async fn write_with_timeout(io: &mut Box<dyn Io>, bytes: &[u8], name: &str) -> Result<(), String> {
    match tokio::time::timeout(WRITE_TIMEOUT, io.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write to {name} failed: {e}")),
        Err(_) => Err(format!(
            "write to {name} stalled for {} s: the RCP stopped reading (check flow control)",
            WRITE_TIMEOUT.as_secs()
        )),
    }
}

fn tx_label(result: &Result<TxAck, TxError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(TxError::NoAck) => "no_ack",
        Err(TxError::ChannelAccessFailure) => "channel_busy",
        Err(TxError::Aborted) => "aborted",
        Err(TxError::Timeout) => "timeout",
        Err(TxError::NotReady) => "not_ready",
        Err(TxError::QueueFull(_)) => "queue_full",
        Err(_) => "error",
    }
}
