//! `ferry sim --pty PATH` as ferryd sees it: a serial port. ferry's radio driver opens it with
//! `spinel+hdlc+uart://PATH`, completes the Spinel handshake with the simulated RCP and gets an
//! ACK from a simulated device. Also `ferry sim --virtual` end to end (JSON and pcap).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry::config::RadioUrl;
use ferry::radio::client::{Settings, TxOptions};
use ferry::radio::{spawn, RadioMetrics};
use ferry::sim::frame::{Address, Header};
use ferry::sim::Scenario;
use tokio_util::sync::CancellationToken;

fn scenario_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/sim").join(name)
}

/// Kills the simulator when the test ends, however it ends.
struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferryd_opens_the_simulator_as_a_serial_port() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttySIM0");
    let scenario = Scenario::load(&scenario_path("home.toml")).unwrap();
    let _sim = Sim(Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["sim", "--scenario"])
        .arg(scenario_path("home.toml"))
        .arg("--pty")
        .arg(&link)
        .stdout(Stdio::null())
        .spawn()
        .unwrap());
    wait_for(&link);

    let url: RadioUrl = format!("spinel+hdlc+uart://{}", link.display()).parse().unwrap();
    let settings = Settings {
        channel: scenario.channel,
        pan_id: scenario.pan_id,
        short_address: scenario.gateway.short,
        ..Settings::default()
    };
    let shutdown = CancellationToken::new();
    let (radio, _frames) = spawn(&url, settings, RadioMetrics::standalone(), shutdown.clone()).unwrap();
    let ready = tokio::time::timeout(Duration::from_secs(20), radio.wait_ready()).await;
    assert_eq!(ready, Ok(true), "handshake over the pty: {:?}", radio.state().borrow().detail);

    let plug = scenario.node("plug-living").unwrap().short;
    let psdu = Header::data(9, scenario.pan_id, Address::Short(plug), Address::Short(scenario.gateway.short), true)
        .emit_frame(b"over a pty")
        .unwrap();
    let ack = tokio::time::timeout(Duration::from_secs(5), radio.send_frame(psdu.as_slice(), TxOptions::default()))
        .await
        .unwrap();
    assert!(ack.is_ok(), "{ack:?}");
    shutdown.cancel();
}

#[test]
fn virtual_run_prints_json_and_writes_a_pcap() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("home.pcap");
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["sim", "--scenario"])
        .arg(scenario_path("home.toml"))
        .args(["--virtual", "--duration", "2m", "--json", "--pcap"])
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["duration_us"], 120_000_000u64);
    let nodes = report["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 13);
    assert_eq!(nodes[0]["name"], "gateway");
    assert!(nodes[0]["radio"]["acks_sent"].as_u64().unwrap() > 10);
    let bytes = std::fs::read(&pcap).unwrap();
    assert_eq!(bytes[..4], [0xd4, 0xc3, 0xb2, 0xa1], "pcap magic");
    assert!(bytes.len() > 24 + 20 * 16);
}
