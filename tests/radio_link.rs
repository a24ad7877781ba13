//! The tokio shell over in-memory pipes, on tokio's paused clock: TX/RX through the async
//! API, metrics, garbage on the line, unplug and reopen with the tables restored, a hung RCP,
//! and an RCP that reboots on its own.

use std::io;
use std::time::Duration;

use ferry::config::RadioUrl;
use ferry::radio::link::{spawn, spawn_with, Connection, LinkError, Opener};
use ferry::radio::{LinkState, Radio, RadioMetrics, Settings, SrcAddr, TxError, TxOptions};
use ferry_rcp_core::rcp::{Config, Rcp};
use ferry_rcp_core::spinel::Status;
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod radio_support;
use radio_support::{eventually, serve_rcp, Ctl, TestRadio};

/// Each (re)open makes a fresh pipe and hands the RCP end to the test.
fn pipe_opener(ends: mpsc::UnboundedSender<DuplexStream>) -> Opener {
    Box::new(move || {
        let ends = ends.clone();
        Box::pin(async move {
            let (host, rcp) = tokio::io::duplex(8192);
            ends.send(rcp).map_err(|_| io::Error::other("the test is over"))?;
            Ok(Connection::new(host))
        })
    })
}

struct Bench {
    radio: Radio,
    frames: mpsc::Receiver<ferry::radio::RxFrame>,
    metrics: RadioMetrics,
    ends: mpsc::UnboundedReceiver<DuplexStream>,
    shutdown: CancellationToken,
}

impl Bench {
    fn new() -> Bench {
        let (tx, ends) = mpsc::unbounded_channel();
        let metrics = RadioMetrics::standalone();
        let shutdown = CancellationToken::new();
        let settings = Settings { channel: 15, pan_id: 0x1234, short_address: 0, ..Settings::default() };
        let (radio, frames) = spawn_with(pipe_opener(tx), "pipe".into(), settings, metrics.clone(), shutdown.clone());
        Bench { radio, frames, metrics, ends, shutdown }
    }

    /// Waits for the link to open the device and serves a freshly booted RCP on it.
    async fn plug(&mut self) -> (mpsc::UnboundedSender<Ctl>, JoinHandle<Rcp<TestRadio>>) {
        let end = self.ends.recv().await.expect("the link opens the device");
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(serve_rcp(end, Rcp::new(TestRadio::new(), Config::default()), ctl_rx));
        (ctl, task)
    }

    fn frames(&self, direction: &str, result: &str) -> u64 {
        self.metrics.frames_total.with_label_values(&[direction, result]).get()
    }
}

fn data_frame(seq: u8, dst: u16) -> Vec<u8> {
    let mut f = vec![0x61, 0x88, seq, 0x34, 0x12];
    f.extend(dst.to_le_bytes());
    f.extend([0x00, 0x00, b'h', b'i', 0x00, 0x00]);
    f
}

#[tokio::test(start_paused = true)]
async fn frames_flow_both_ways_through_the_async_api() {
    let mut b = Bench::new();
    assert_eq!(b.metrics.rcp_up.get(), 0);
    let (ctl, rcp) = b.plug().await;
    assert!(b.radio.wait_ready().await);
    assert_eq!(b.metrics.rcp_up.get(), 1);
    let status = b.radio.state().borrow().clone();
    assert!(status.up && status.detail.starts_with("FERRY-RCP/"), "{status:?}");
    assert!(status.detail.ends_with(", 2 transmission(s) at once"), "{status:?}");

    b.radio.src_match_insert(SrcAddr::Short(7)).await.unwrap();
    let ack = b.radio.send_frame(&data_frame(1, 7), TxOptions::default()).await.unwrap();
    assert!(ack.frame_pending);
    let ack = b.radio.send_frame(&data_frame(2, 8), TxOptions::default()).await.unwrap();
    assert!(!ack.frame_pending);
    assert_eq!(b.frames("tx", "ok"), 2);
    // Handed over without waiting, in call order; the outcomes come back in the same order.
    let mut first = b.radio.start_frame(&data_frame(3, 7), TxOptions::default()).unwrap();
    let mut second = b.radio.start_frame(&data_frame(4, 8), TxOptions::default()).unwrap();
    assert!(first.done().await.unwrap().frame_pending);
    assert!(!second.done().await.unwrap().frame_pending);
    assert_eq!(b.frames("tx", "ok"), 4);

    // Garbage on the line, then two frames from the air.
    ctl.send(Ctl::Raw(vec![0x00, 0x7e, 0x13, 0x37, 0x7e, 0x7d])).unwrap();
    ctl.send(Ctl::Raw(vec![0x7e])).unwrap();
    ctl.send(Ctl::Rx(data_frame(9, 0), -70, 100, 1234)).unwrap();
    ctl.send(Ctl::Rx(data_frame(10, 0), -72, 90, 5678)).unwrap();
    let f = b.frames.recv().await.unwrap();
    assert_eq!((f.psdu[2], f.rssi, f.lqi, f.timestamp_us, f.channel), (9, -70, 100, 1234, 15));
    let f = b.frames.recv().await.unwrap();
    assert_eq!((f.psdu[2], f.timestamp_us), (10, 5678));
    assert_eq!(b.frames("rx", "ok"), 2);
    assert_eq!(b.metrics.rcp_up.get(), 1);

    // Bad requests come back as errors without touching the line.
    assert_eq!(b.radio.send_frame(&[1], TxOptions::default()).await, Err(TxError::BadLength(1)));
    assert!(b.radio.set_channel(9).await.is_err());

    b.shutdown.cancel();
    assert!(eventually(Duration::from_secs(1), || b.metrics.rcp_up.get() == 0).await);
    let rcp = rcp.await.unwrap();
    let sent: Vec<u8> = rcp.radio().sent.iter().map(|f| f.0[2]).collect();
    assert_eq!(sent, [1, 2, 3, 4], "sequence numbers on air");
}

#[tokio::test(start_paused = true)]
async fn unplug_reopens_with_backoff_and_restores_the_tables() {
    let mut b = Bench::new();
    let (ctl, rcp) = b.plug().await;
    assert!(b.radio.wait_ready().await);
    b.radio.set_channel(22).await.unwrap();
    b.radio.src_match_insert(SrcAddr::Short(0x0102)).await.unwrap();
    b.radio.src_match_insert(SrcAddr::Extended([8, 7, 6, 5, 4, 3, 2, 1])).await.unwrap();

    ctl.send(Ctl::Unplug).unwrap();
    drop(rcp.await.unwrap());
    let mut state = b.radio.state();
    state.wait_for(|s| !s.up).await.unwrap();
    let status = state.borrow().clone();
    assert!(status.detail.contains("EOF"), "{status:?}");
    assert_eq!(b.metrics.rcp_up.get(), 0);
    assert_eq!(b.radio.send_frame(&data_frame(1, 1), TxOptions::default()).await, Err(TxError::NotReady));
    // Changes while unplugged are recorded.
    b.radio.src_match_insert(SrcAddr::Short(0x0003)).await.unwrap();

    // The dongle comes back (the link reopens on its own).
    let t0 = tokio::time::Instant::now();
    let (ctl, rcp) = b.plug().await;
    assert!(t0.elapsed() <= Duration::from_millis(250), "first reopen after the minimum backoff");
    assert!(b.radio.wait_ready().await);
    b.radio.send_frame(&data_frame(2, 0x0102), TxOptions::default()).await.unwrap();
    ctl.send(Ctl::Unplug).unwrap();
    let rcp = rcp.await.unwrap();
    let radio = rcp.radio();
    assert_eq!((radio.channel, radio.pan_id), (22, 0x1234));
    let mut shorts = radio.table.shorts().to_vec();
    shorts.sort();
    assert_eq!(shorts, [0x0003, 0x0102]);
    assert_eq!(radio.table.extendeds(), [[8, 7, 6, 5, 4, 3, 2, 1]]);
    assert_eq!(radio.sent.len(), 1);
    assert_eq!(b.metrics.rcp_resets_total.get(), 0, "an unplug is not an RCP reset");
}

#[tokio::test(start_paused = true)]
async fn a_hung_rcp_is_reset_then_reopened() {
    let mut b = Bench::new();
    let (ctl, _rcp) = b.plug().await;
    assert!(b.radio.wait_ready().await);
    ctl.send(Ctl::Mute(true)).unwrap();
    let t0 = tokio::time::Instant::now();
    assert_eq!(b.radio.send_frame(&data_frame(1, 1), TxOptions::default()).await, Err(TxError::Timeout));
    assert_eq!(t0.elapsed(), Duration::from_secs(2), "OpenThread's 2 s");
    assert_eq!(b.frames("tx", "timeout"), 1);
    // Three unanswered resets later the device is reopened.
    let (_ctl2, _rcp2) = b.plug().await;
    assert!(t0.elapsed() >= Duration::from_secs(8), "{:?}", t0.elapsed());
    assert!(b.radio.wait_ready().await);
    b.radio.send_frame(&data_frame(2, 1), TxOptions::default()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_rcp_reboot_is_counted_and_reinitialised() {
    let mut b = Bench::new();
    let (ctl, rcp) = b.plug().await;
    assert!(b.radio.wait_ready().await);
    b.radio.set_channel(12).await.unwrap();
    ctl.send(Ctl::Reboot(Status::ResetWatchdog)).unwrap();
    assert!(eventually(Duration::from_secs(5), || b.metrics.rcp_resets_total.get() == 1).await);
    assert!(b.radio.wait_ready().await);
    let status = b.radio.state().borrow().clone();
    assert_eq!((status.resets, status.state), (1, LinkState::Ready));
    b.radio.send_frame(&data_frame(1, 1), TxOptions::default()).await.unwrap();
    ctl.send(Ctl::Unplug).unwrap();
    let rcp = rcp.await.unwrap();
    assert_eq!(rcp.radio().channel, 12, "restored on the rebooted RCP");
}

#[tokio::test]
async fn urls_the_link_cannot_open() {
    let metrics = RadioMetrics::standalone();
    let sim: RadioUrl = "sim:home.toml".parse().unwrap();
    let e = spawn(&sim, Settings::default(), metrics.clone(), CancellationToken::new()).err().expect("refused");
    assert!(matches!(e, LinkError::Simulated(_)));
    assert!(e.to_string().contains("src/sim"), "{e}");

    let shutdown = CancellationToken::new();
    let url: RadioUrl = "spinel+hdlc+forkpty:///nonexistent/ot-rcp?arg=1".parse().unwrap();
    let (radio, _frames) = spawn(&url, Settings::default(), metrics, shutdown.clone()).unwrap();
    let mut state = radio.state();
    let status = state.wait_for(|s| s.detail.contains("reopening")).await.unwrap().clone();
    assert!(status.detail.contains("/nonexistent/ot-rcp"), "{status:?}");
    assert!(!status.up);

    let url: RadioUrl = "spinel+hdlc+uart:///dev/nonexistent-tty?uart-baudrate=115200".parse().unwrap();
    let (radio, _frames) = spawn(&url, Settings::default(), RadioMetrics::standalone(), shutdown.clone()).unwrap();
    let mut state = radio.state();
    let status = state.wait_for(|s| s.detail.contains("reopening")).await.unwrap().clone();
    assert!(status.detail.contains("/dev/nonexistent-tty"), "{status:?}");
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn an_idle_rcp_that_hangs_is_noticed_by_the_keepalive() {
    let mut b = Bench::new();
    let (ctl, _rcp) = b.plug().await;
    assert!(b.radio.wait_ready().await);
    // Idle and answering: still up after a minute of keepalives.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(b.metrics.rcp_up.get(), 1);
    ctl.send(Ctl::Mute(true)).unwrap();
    let t0 = tokio::time::Instant::now();
    let mut state = b.radio.state();
    state.wait_for(|s| !s.up).await.unwrap();
    assert!(t0.elapsed() <= Duration::from_secs(15 + 2), "{:?}", t0.elapsed());
    assert_eq!(b.metrics.rcp_up.get(), 0);
    // Reset attempts go unanswered, so the device is reopened and a working RCP picks up.
    let (_ctl2, _rcp2) = b.plug().await;
    assert!(b.radio.wait_ready().await);
}

/// The UART path for real: tokio-serial opens the slave side of a pty whose master runs ferry's
/// RCP core. Closing the master is the USB unplug: the link goes down and keeps retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uart_url_over_a_pty_to_the_rcp_core() {
    use std::os::fd::AsFd;

    use ferry::radio::pty::{open_raw_pty, PtyStream};

    let (master, slave) = open_raw_pty().unwrap();
    let tty = nix::unistd::ttyname(slave.as_fd()).unwrap();
    let (ctl, ctl_rx) = mpsc::unbounded_channel();
    let rcp =
        tokio::spawn(serve_rcp(PtyStream::new(master).unwrap(), Rcp::new(TestRadio::new(), Config::default()), ctl_rx));
    let url: RadioUrl = format!("spinel+hdlc+uart://{}?uart-baudrate=115200", tty.display()).parse().unwrap();
    let metrics = RadioMetrics::standalone();
    let shutdown = CancellationToken::new();
    let settings = Settings { channel: 25, pan_id: 0xabcd, ..Settings::default() };
    let (radio, mut frames) = spawn(&url, settings, metrics.clone(), shutdown.clone()).unwrap();
    let limit = Duration::from_secs(20);
    assert!(tokio::time::timeout(limit, radio.wait_ready()).await.unwrap());
    let ack =
        tokio::time::timeout(limit, radio.send_frame(&data_frame(3, 9), TxOptions::default())).await.unwrap().unwrap();
    assert_eq!(ack.ack.unwrap().psdu[2], 3);
    ctl.send(Ctl::Rx(data_frame(4, 0), -80, 50, 77)).unwrap();
    let f = tokio::time::timeout(limit, frames.recv()).await.unwrap().unwrap();
    assert_eq!((f.psdu[2], f.rssi, f.lqi, f.timestamp_us, f.channel), (4, -80, 50, 77, 25));

    let mut state = radio.state();
    ctl.send(Ctl::Unplug).unwrap();
    let rcp = rcp.await.unwrap();
    assert_eq!((rcp.radio().channel, rcp.radio().pan_id), (25, 0xabcd));
    drop(rcp);
    let down = tokio::time::timeout(limit, state.wait_for(|s| !s.up)).await.unwrap().unwrap().clone();
    assert!(!down.up, "{down:?}");
    assert!(tokio::time::timeout(limit, async {
        while metrics.rcp_up.get() != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .is_ok());
    drop(slave);
    shutdown.cancel();
}
