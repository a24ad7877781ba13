//! Helpers for tests that run the real `ferryd` and `ferry` binaries on temp dirs and
//! ephemeral ports.
#![allow(dead_code)] // each test binary uses its own subset

pub mod riot;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry::control::api::StatusReport;

/// The simulated flat the embedded default runs on.
pub const HOME_SCENARIO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim/home.toml");

/// A config for tests: the simulated flat, state in the config's folder, metrics on an
/// ephemeral port.
pub fn test_config(extra: &str) -> String {
    format!(
        "[radio]\nurl = \"sim:{HOME_SCENARIO}\"\n[store]\nstate_dir = \"state\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
         [control]\nsocket = \"control.sock\"\n{extra}"
    )
}

/// A ferryd child process with its own folder; killed when dropped.
pub struct Ferryd {
    pub dir: PathBuf,
    pub child: Child,
}

impl Ferryd {
    /// Writes `config` to `dir/ferry.toml` and starts ferryd on it.
    pub fn spawn(dir: &Path, config: &str) -> Ferryd {
        std::fs::write(dir.join("ferry.toml"), config).expect("write config");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("ferryd.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_ferryd"))
            .arg("--config")
            .arg(dir.join("ferry.toml"))
            .env("RUST_LOG", "debug")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ferryd");
        Ferryd { dir: dir.to_owned(), child }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until ferryd answers `ferry status` with its radio up.
    pub fn wait_radio_up(&mut self) -> StatusReport {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let report = self.wait_ready();
            if report.radio.up {
                return report;
            }
            assert!(Instant::now() < deadline, "the radio never came up: {:?}\nlog:\n{}", report.radio, self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until ferryd answers `ferry status`.
    pub fn wait_ready(&mut self) -> StatusReport {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("ferryd exited early with {status}; log:\n{}", self.log());
            }
            if let Ok(report) = status(&self.socket()) {
                return report;
            }
            assert!(Instant::now() < deadline, "ferryd did not become ready; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().expect("kill");
        assert!(ok.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "ferryd did not exit; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("ferryd.log")).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (up to a minute: CI runs test binaries' tests in
    /// parallel on two cores, and a simulated PAN in real time shares them).
    pub fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.log().contains(needle) {
            assert!(Instant::now() < deadline, "log never said {needle:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Ferryd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ferry --socket PATH ARGS…`
pub fn ferry(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry")).arg("--socket").arg(socket).args(args).output().expect("run ferry")
}

/// `ferry status --json`, parsed.
pub fn status(socket: &Path) -> Result<StatusReport, String> {
    let out = ferry(socket, &["status", "--json"]);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// One `GET /metrics`, as Prometheus would scrape it.
pub fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to metrics");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    body.to_owned()
}

/// The value of an unlabelled sample in a scrape.
pub fn sample(scrape: &str, name: &str) -> Option<f64> {
    scrape.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Whether an external validator is installed. CI sets `FERRY_REQUIRE_TOOLS=1`, which turns a
/// missing tool into a failure instead of a skip.
pub fn have_tool(name: &str) -> bool {
    let found =
        Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var("FERRY_REQUIRE_TOOLS").as_deref() != Ok("1"), "{name} is required but not installed");
        eprintln!("skipping the {name} check: {name} is not installed (CI installs it)");
    }
    found
}

/// `promtool check metrics` accepts the scrape (when promtool is installed, see [`have_tool`]).
pub fn promtool_check(metrics: &str) {
    if !have_tool("promtool") {
        return;
    }
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    promtool.stdin.take().expect("stdin").write_all(metrics.as_bytes()).expect("feed");
    let out = promtool.wait_with_output().expect("promtool");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool check metrics:\n{report}\n{metrics}");
}
