//! Delivery to simulated RIOT nodes through a real ferryd: the star scenario, updates published
//! by `ferry publish --format riot` (TEST-ONLY key), ferryd's config for them, the simulator
//! as its own process on a pty (`ferry sim --pty`, whose JSON report is every node's ground
//! truth), and reading back what ferry recorded (`ferry history`, `ferry device show`, metrics).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{ferry, scrape, Ferryd};

/// RIOT's test-only signing key (shared/vectors/suit); the nodes compile in its public half.
pub const TEST_ONLY_KEY: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/src/suit/testdata/test_ed25519_private_TESTONLY.pem");
pub const TEST_ONLY_PUBLIC: &str = "2eaf3e1decf7d8b376ee9692a11a9f834d1dd66c3c431ca5ae919ea6dbdf2471";
/// ferry's address on the LoWPAN: the scenario's prefix and the gateway RCP's EUI-64.
pub const GATEWAY_URI: &str = "coap://[fd00:f3:e5::f20d:fe77:0:1]";
pub const BOARD: &str = "nrf52840dk";

pub fn eui(n: usize) -> String {
    format!("02:00:fe:77:00:00:01:{n:02x}")
}

/// `eui(n)` as `ferry history` and the sessions table write it.
pub fn eui_hex(n: usize) -> String {
    eui(n).replace(':', "")
}

/// A star of `n` always-on ferry-aware RIOT nodes running sequence `installed`.
pub fn star(n: usize, installed: u64, block_size: u16) -> String {
    star_with_failures(n, installed, block_size, &[])
}

/// [`star`] where node `i` gets `failures[i]` as its `failure = { … }` (empty: none).
pub fn star_with_failures(n: usize, installed: u64, block_size: u16, failures: &[&str]) -> String {
    let mut s = String::from(
        "seed = 7\nchannel = 26\npan_id = 0xface\n\n[gateway]\neui64 = \"f0:0d:fe:77:00:00:00:01\"\nshort = 0x0000\n\
         position = [0.0, 0.0]\ntx_dbm = 0.0\n",
    );
    for i in 0..n {
        let angle = i as f64 * 2.0 * std::f64::consts::PI / n as f64;
        s += &format!(
            "\n[[node]]\nname = \"bulb-{i}\"\neui64 = \"{}\"\nshort = 0x{:04x}\nposition = [{:.2}, {:.2}]\nrole = \"leaf\"\n\
             tx_dbm = 0.0\nduty_cycle = {{ mode = \"always-on\" }}\nboard = {{ vendor = \"riot-os.org\", class = \"{BOARD}\" }}\n\
             firmware = {{ version = \"1.0.0\", sequence = {installed} }}\nferry_aware = true\ncoap_block_size = {block_size}\n",
            eui(i),
            0x100 + i,
            3.0 * angle.cos(),
            3.0 * angle.sin(),
        );
        if let Some(f) = failures.get(i).filter(|f| !f.is_empty()) {
            s += &format!("failure = {{ {f} }}\n");
        }
    }
    s
}

/// Publishes sequence `seq` for the board into `repo/BOARD-seq/` with two slot images of `size`
/// bytes; returns the watch path.
pub fn publish(repo: &Path, seq: u64, size: usize) -> String {
    publish_for(repo, BOARD, seq, size, GATEWAY_URI).0
}

/// Publishes sequence `seq` for `board` into `repo/BOARD-seq/`: two slot images of `size` bytes,
/// a RIOT envelope signed with the test-only key, its URIs under `uri_base`. Returns the watch
/// path and the folder.
pub fn publish_for(repo: &Path, board: &str, seq: u64, size: usize, uri_base: &str) -> (String, PathBuf) {
    let folder = format!("{board}-{seq}");
    let dir = repo.join(&folder);
    std::fs::create_dir_all(&dir).expect("repository folder");
    for slot in 0..2 {
        let line = format!("test firmware {board} sequence {seq} slot {slot}\n");
        let image: Vec<u8> = line.bytes().cycle().take(size).collect();
        std::fs::write(dir.join(format!("slot{slot}.bin")), image).expect("image");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["publish", "--format", "riot", "--key"])
        .arg(TEST_ONLY_KEY)
        .args(["--seq", &seq.to_string(), "--vendor", "riot-os.org", "--class", board])
        .args(["--uri", &format!("{uri_base}/fw/{board}/{seq}")])
        .arg("--slot")
        .arg("0x2000")
        .arg(dir.join("slot0.bin"))
        .arg("--slot")
        .arg("0x42000")
        .arg(dir.join("slot1.bin"))
        .arg("-o")
        .arg(dir.join("manifest.suit"))
        .output()
        .expect("ferry publish");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (format!("{folder}/manifest.suit"), dir)
}

/// ferryd's config: the radio, the repository watching `watch`, the test-only authority and a
/// group `star` of the first `devices` nodes; `extra` is appended (e.g. a `[delivery]` table).
pub fn config(radio_url: &str, watch: &str, devices: usize, extra: &str) -> String {
    let devices: Vec<String> = (0..devices).map(|i| format!("\"{}\"", eui(i))).collect();
    format!(
        "[radio]\nurl = \"{radio_url}\"\n[store]\nstate_dir = \"state\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
         [control]\nsocket = \"control.sock\"\n[coap]\nlisten = [\"[::1]:0\"]\n\
         [plan]\nmax_concurrent_per_parent = 8\nair_time_budget = 1.0\n{extra}\n\
         [[repository]]\nname = \"local\"\nurl = \"repo\"\nwatch = [\"{watch}\"]\npoll_interval_s = 5\n\
         [[authority]]\nname = \"riot-test\"\nkeys = [\"{TEST_ONLY_PUBLIC}\"]\n\
         [authority.scope]\nvendor_ids = [\"riot-os.org\"]\nclass_ids = [\"*\"]\ncomponent_ids = [\"*\"]\n\
         [[owner]]\nname = \"root\"\nuid = 0\n\
         [[group]]\nname = \"star\"\nadmin = \"root\"\ndevices = [{}]\n",
        devices.join(", ")
    )
}

/// `name{labels} value` from a scrape (0 when absent).
pub fn labelled(scrape: &str, name_and_labels: &str) -> f64 {
    scrape.lines().find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

/// Waits until `done` holds for the metrics, at most `limit`; returns that scrape.
pub fn wait_metrics(d: &mut Ferryd, limit: Duration, what: &str, done: impl Fn(&str) -> bool) -> String {
    let addr = d.wait_ready().metrics_listen;
    let deadline = Instant::now() + limit;
    loop {
        let s = scrape(addr);
        if done(&s) {
            return s;
        }
        if Instant::now() >= deadline {
            let plan = ferry(&d.socket(), &["plan"]);
            panic!(
                "{what} did not happen in {limit:?}; metrics:\n{s}\nplan:\n{}\nhistory:\n{}\nlog:\n{}",
                String::from_utf8_lossy(&plan.stdout),
                history(&d.dir),
                d.log()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `ferry history` of the state dir in `dir`.
pub fn history(dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("history")
        .arg("--state-dir")
        .arg(dir.join("state"))
        .output()
        .expect("ferry history");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ferry device show --json`, parsed.
pub fn device_show(socket: &Path, device: &str) -> serde_json::Value {
    let out = ferry(socket, &["device", "show", "--json", device]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

/// The installed sequence number ferry records for a device's RIOT component, and its source.
pub fn installed(socket: &Path, device: &str) -> (Option<u64>, String) {
    let report = device_show(socket, device);
    let c = &report["device"]["components"]["00"];
    (c["value"].as_u64(), c["source"].as_str().unwrap_or_default().to_owned())
}

/// `ferry sim --pty` on a scenario as its own process, so the devices outlive a killed ferryd;
/// killed when dropped, however the test ends.
pub struct Sim {
    child: Option<Child>,
    /// `spinel+hdlc+uart://…`: the radio URL for ferryd's config.
    pub url: String,
}

impl Sim {
    /// Starts the simulator on `scenario` with its gateway RCP on a pty linked at `dir/ttySIM0`.
    pub fn spawn(dir: &Path, scenario: &Path) -> Sim {
        let link: PathBuf = dir.join("ttySIM0");
        let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["sim", "--json", "--scenario"])
            .arg(scenario)
            .arg("--pty")
            .arg(&link)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ferry sim");
        let sim = Sim { child: Some(child), url: format!("spinel+hdlc+uart://{}", link.display()) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !link.exists() {
            assert!(Instant::now() < deadline, "the simulator's pty never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
        sim
    }

    /// SIGTERM, then its JSON report (every node's ground truth).
    pub fn report(mut self) -> serde_json::Value {
        let child = self.child.take().expect("running");
        let ok = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
        assert!(ok.success());
        let out = child.wait_with_output().expect("sim exits");
        serde_json::from_slice(&out.stdout).expect("the simulator's JSON report")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A node's firmware ground truth in a simulator report.
pub fn firmware<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let node = report["nodes"].as_array().expect("nodes").iter().find(|n| n["name"] == name).expect("node");
    &node["firmware"]
}
