//! ferryd as a user runs it: the real binary, its signals, its state dir, its endpoints.

mod common;

use std::process::{Command, Stdio};

use common::{have_tool, sample, scrape, test_config, Ferryd};

#[test]
fn status_and_metrics_of_a_running_daemon() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ferryd = Ferryd::spawn(dir.path(), &test_config(""));
    // The simulated flat's gateway RCP answers the real Spinel handshake.
    let status = ferryd.wait_radio_up();
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(status.pid, ferryd.pid());
    assert_eq!(status.store.state_dir, dir.path().join("state"));
    assert_eq!(status.store.schema_version, ferry::store::schema_version());
    assert_eq!(status.store.runs.runs, 1);

    // The human view names the same facts.
    let human = common::ferry(&ferryd.socket(), &["status"]);
    assert!(human.status.success());
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains(&format!("pid {}", ferryd.pid())), "{text}");
    assert!(text.contains("radio:    up"), "{text}");

    let metrics = scrape(status.metrics_listen);
    assert_eq!(sample(&metrics, "ferry_rcp_up"), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, "ferry_config_reload_failures_total"), Some(0.0));
    assert!(sample(&metrics, "process_resident_memory_bytes").is_some_and(|rss| rss > 0.0), "{metrics}");
    assert!(sample(&metrics, "process_open_fds").is_some(), "{metrics}");
    assert!(metrics.contains("ferry_build_info{version=\""), "{metrics}");

    // Prometheus' own linter accepts the live scrape.
    common::promtool_check(&metrics);
}

#[test]
fn sigterm_stops_cleanly_and_removes_the_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ferryd = Ferryd::spawn(dir.path(), &test_config(""));
    ferryd.wait_ready();
    ferryd.signal("TERM");
    assert_eq!(ferryd.wait_exit(), Some(0), "{}", ferryd.log());
    assert!(!ferryd.socket().exists(), "the control socket is removed on a clean stop");

    let mut again = Ferryd::spawn(dir.path(), &test_config(""));
    let status = again.wait_ready();
    assert_eq!(status.store.runs.runs, 2);
    assert_eq!(status.store.runs.previous_clean, Some(true));
    assert_eq!(status.store.runs.unclean_stops, 0);
}

#[test]
fn sigkill_leaves_a_store_that_passes_its_integrity_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ferryd = Ferryd::spawn(dir.path(), &test_config(""));
    ferryd.wait_ready();
    // Kill it while clients keep it busy reading the store.
    for _ in 0..5 {
        let _ = common::status(&ferryd.socket());
    }
    ferryd.signal("KILL");
    assert_eq!(ferryd.wait_exit(), None, "killed by a signal");

    let conn = rusqlite::Connection::open(dir.path().join("state/ferry.db")).expect("open the killed store");
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity_check");
    assert_eq!(check, "ok");
    drop(conn);

    let mut again = Ferryd::spawn(dir.path(), &test_config(""));
    let status = again.wait_ready();
    assert_eq!(status.store.runs.runs, 2);
    assert_eq!(status.store.runs.previous_clean, Some(false), "the kill is remembered as an unclean stop");
    assert_eq!(status.store.runs.unclean_stops, 1);
}

#[test]
fn a_second_daemon_on_the_same_state_dir_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut first = Ferryd::spawn(dir.path(), &test_config(""));
    first.wait_ready();

    let second_dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        "[radio]\nurl = \"sim:{}\"\n[store]\nstate_dir = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
         [control]\nsocket = \"control.sock\"\n",
        common::HOME_SCENARIO,
        dir.path().join("state").display()
    );
    let mut second = Ferryd::spawn(second_dir.path(), &config);
    assert_eq!(second.wait_exit(), Some(1));
    let log = second.log();
    assert!(log.contains("is in use by another ferryd"), "{log}");
    assert!(log.contains(&format!("pid {}", first.pid())), "{log}");
    // The first one is unharmed.
    assert!(common::status(&first.socket()).is_ok());
}

#[test]
fn sighup_with_a_bad_file_keeps_the_old_configuration() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ferryd = Ferryd::spawn(dir.path(), &test_config("[log]\nlevel = \"info\"\n"));
    let status = ferryd.wait_ready();
    let config_path = dir.path().join("ferry.toml");

    // A typo'd key: refused, counted, and the daemon keeps serving.
    std::fs::write(&config_path, test_config("[log]\nlevle = \"debug\"\n")).expect("write bad config");
    ferryd.signal("HUP");
    ferryd.wait_log("configuration reload refused");
    assert!(ferryd.log().contains("levle"), "the log names the bad key:\n{}", ferryd.log());
    let metrics = scrape(status.metrics_listen);
    assert_eq!(sample(&metrics, "ferry_config_reload_failures_total"), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, "ferry_config_reloads_total"), Some(0.0), "{metrics}");
    assert!(common::status(&ferryd.socket()).is_ok());

    // A good file is applied.
    std::fs::write(&config_path, test_config("[log]\nlevel = \"debug\"\n")).expect("write good config");
    ferryd.signal("HUP");
    ferryd.wait_log("configuration reloaded");
    let metrics = scrape(status.metrics_listen);
    assert_eq!(sample(&metrics, "ferry_config_reloads_total"), Some(1.0), "{metrics}");
}

#[test]
fn check_config_prints_the_effective_config_or_names_the_fault() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ferry.toml");
    let check = |text: &str| {
        std::fs::write(&path, text).expect("write");
        Command::new(env!("CARGO_BIN_EXE_ferryd")).arg("--check-config").arg(&path).output().expect("run")
    };

    let good = check("[radio]\nurl = \"sim:home.toml\"\n");
    assert!(good.status.success());
    let effective = String::from_utf8_lossy(&good.stdout);
    assert!(effective.contains("listen = \"127.0.0.1:9478\""), "defaults are filled in:\n{effective}");
    assert!(effective.contains(&format!("url = \"sim:{}\"", dir.path().join("home.toml").display())), "{effective}");

    for (text, line, key) in [
        ("[radio]\nurl = \"sim:x\"\n\n[network]\nchanel = 11\n", 5, "network.chanel"),
        ("[radio]\nurl = \"sim:x\"\n[network]\npan_id = \"face\"\n", 4, "network.pan_id"),
        ("[radio]\nurl = \"sim:x\"\n[metrics]\nlisten = \"localhost\"\n", 4, "metrics.listen"),
    ] {
        let out = check(text);
        assert_eq!(out.status.code(), Some(78), "EX_CONFIG for {text:?}");
        let message = String::from_utf8_lossy(&out.stderr);
        assert!(message.contains(&format!("ferry.toml:{line}:")), "{message}");
        assert!(message.contains(key), "{message}");
    }
}

#[test]
fn ferry_without_a_daemon_says_how_to_find_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = common::ferry(&dir.path().join("absent.sock"), &["status"]);
    assert!(!out.status.success());
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("absent.sock") && message.contains("--socket"), "{message}");
}

#[test]
fn systemd_hears_ready_watchdog_and_stopping() {
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().expect("temp dir");
    let (systemd, mut child) = spawn_under_systemd_notify(dir.path(), &test_config(""), 400_000);
    systemd.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");

    let mut heard = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(10);
    while heard.iter().filter(|m: &&String| m.contains("WATCHDOG=1")).count() < 2 && Instant::now() < deadline {
        let Ok(n) = systemd.recv(&mut buf) else {
            let _ = child.kill();
            panic!("systemd heard only {heard:?}");
        };
        heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(heard[0].contains("READY=1") && heard[0].contains("STATUS=radio up"), "{heard:?}");
    assert!(heard.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2, "{heard:?}");

    let ok = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
    assert!(ok.success());
    loop {
        let n = systemd.recv(&mut buf).expect("a notification");
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            break;
        }
    }
    assert!(child.wait().expect("wait").success());
}

#[test]
fn a_stock_ot_rcp_on_forkpty_brings_the_radio_up() {
    // tests/peers/fake_ot_rcp.py answers like a stock ot-rcp, built on pyspinel's codec.
    if !have_tool("python3") {
        return;
    }
    let pyspinel = Command::new("python3").args(["-c", "import spinel.hdlc"]).status().is_ok_and(|s| s.success());
    if !pyspinel {
        assert!(std::env::var("FERRY_REQUIRE_TOOLS").as_deref() != Ok("1"), "pyspinel is required");
        eprintln!("skipping: pyspinel is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let peer = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/fake_ot_rcp.py");
    let log = dir.path().join("rcp.log");
    let config = format!(
        "[radio]\nurl = \"spinel+hdlc+forkpty:///usr/bin/env?arg=python3&arg={peer}&arg=--stdio&arg=--log&arg={}\"\n\
         [store]\nstate_dir = \"state\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n[control]\nsocket = \"control.sock\"\n",
        log.display()
    );
    let mut ferryd = Ferryd::spawn(dir.path(), &config);
    ferryd.wait_ready();
    // Generous: a Python RCP starts slowly on a loaded machine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        let status = common::status(&ferryd.socket()).expect("status");
        if status.radio.up || std::time::Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(status.radio.up, "radio: {:?}\nlog:\n{}", status.radio, ferryd.log());
    let metrics = scrape(status.metrics_listen);
    assert_eq!(sample(&metrics, "ferry_rcp_up"), Some(1.0), "{metrics}");
}

#[test]
fn coap_on_kernel_udp_answers_libcoap_and_counts_in_metrics() {
    if !have_tool("coap-client-notls") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ferryd = Ferryd::spawn(dir.path(), &test_config("[coap]\nlisten = [\"[::1]:0\"]\n"));
    let status = ferryd.wait_ready();
    let [coap] = status.coap_listen[..] else { panic!("one CoAP address expected: {:?}", status.coap_listen) };
    let get = |path: &str| {
        let out = Command::new("coap-client-notls")
            .args(["-m", "get", "-B", "5", &format!("coap://[::1]:{}/{path}", coap.port())])
            .output()
            .expect("coap-client-notls");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(get(".well-known/core").contains("</ferry/version>"));
    assert_eq!(get("ferry/version").trim(), env!("CARGO_PKG_VERSION"));

    // The endpoint's counters reach Prometheus within one export period.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let metrics = scrape(status.metrics_listen);
        let con_in = metrics
            .lines()
            .find(|l| l.starts_with("ferry_coap_messages_total{direction=\"rx\",type=\"con\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
        if con_in.is_some_and(|n| n >= 2.0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "CoAP requests never counted:\n{metrics}");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

#[test]
fn owner_files_are_checked_and_a_refused_one_is_reported() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let owners = "[[owner]]\nname = \"landlord\"\nuid = 0\n[[group]]\nname = \"flat\"\nadmin = \"landlord\"\n";
    let owners_d = dir.path().join("owners.d");
    std::fs::create_dir(&owners_d).expect("owners.d");
    let file = owners_d.join("landlord.toml");
    std::fs::write(&file, "[group.flat]\nwindows = [\"Mon-Fri 02:00-05:00\"]\n").expect("write");
    // World-writable: anyone could change the landlord's windows, so ferry refuses it.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let mut ferryd = Ferryd::spawn(dir.path(), &test_config(owners));
    let status = ferryd.wait_ready();
    assert_eq!(status.counts.owner_files_in_force, 0);
    assert!(ferryd.log().contains("owner file refused"), "{}", ferryd.log());
    assert!(ferryd.log().contains("chmod go-w"), "the log says how to fix it:\n{}", ferryd.log());
    assert_eq!(sample(&scrape(status.metrics_listen), "ferry_owner_files{state=\"rejected\"}"), Some(1.0));

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    ferryd.signal("HUP");
    ferryd.wait_log("owner settings in force");
    assert_eq!(common::status(&ferryd.socket()).expect("status").counts.owner_files_in_force, 1);
}

#[test]
fn the_watchdog_stops_when_the_radio_stays_unreachable() {
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().expect("temp dir");
    // An "RCP" that never answers: the handshake cannot complete.
    let config = "[radio]\nurl = \"spinel+hdlc+forkpty:///usr/bin/env?arg=sleep&arg=600\"\nready_timeout_s = 0\n\
                  unreachable_grace_s = 1\n[store]\nstate_dir = \"state\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
                  [control]\nsocket = \"control.sock\"\n";
    let (systemd, mut child) = spawn_under_systemd_notify(dir.path(), config, 200_000);
    systemd.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");

    let started = Instant::now();
    let mut pings = Vec::new();
    let mut buf = [0u8; 512];
    while started.elapsed() < Duration::from_secs(4) {
        if let Ok(n) = systemd.recv(&mut buf) {
            if String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1") {
                pings.push(started.elapsed());
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(!pings.is_empty(), "the watchdog was fed while the radio was within its grace period");
    let last = pings.last().copied().unwrap_or_default();
    assert!(last < Duration::from_millis(2500), "pings went on after the grace period: {pings:?}");
}

/// Starts ferryd on `config` in `dir` as systemd would with `WatchdogSec=`: a notify socket
/// (returned, for the test to read) and the watchdog variables naming ferryd's pid.
fn spawn_under_systemd_notify(
    dir: &std::path::Path,
    config: &str,
    watchdog_usec: u64,
) -> (std::os::unix::net::UnixDatagram, std::process::Child) {
    let notify_path = dir.join("notify.sock");
    let systemd = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("bind a notify socket");
    std::fs::write(dir.join("ferry.toml"), config).expect("config");
    // systemd names the watched pid; `exec` keeps the shell's pid for ferryd.
    let child = Command::new("sh")
        .arg("-c")
        .arg(r#"WATCHDOG_PID=$$ exec "$0" --config "$1""#)
        .arg(env!("CARGO_BIN_EXE_ferryd"))
        .arg(dir.join("ferry.toml"))
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", watchdog_usec.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ferryd");
    (systemd, child)
}

/// The embedded default's repository folder, with a RIOT update signed by a test-only key.
const REPOSITORY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/repository");
const RIOT_TEST_KEY: &str = "2eaf3e1decf7d8b376ee9692a11a9f834d1dd66c3c431ca5ae919ea6dbdf2471";

fn repository_config(vendor_scope: &str) -> String {
    test_config(&format!(
        "[[repository]]\nname = \"local\"\nurl = \"{REPOSITORY}\"\nwatch = [\"samr21-xpro/manifest.suit\"]\n\
         [[authority]]\nname = \"riot-test\"\nkeys = [\"{RIOT_TEST_KEY}\"]\n[authority.scope]\n\
         vendor_ids = [\"{vendor_scope}\"]\nclass_ids = [\"*\"]\ncomponent_ids = [\"*\"]\n"
    ))
}

/// Polls the metrics until `name` reaches `at_least` (the rooms export every 5 s).
fn wait_metric(ferryd: &Ferryd, addr: std::net::SocketAddr, name: &str, at_least: f64) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let metrics = scrape(addr);
        if sample(&metrics, name).is_some_and(|v| v >= at_least) {
            return metrics;
        }
        assert!(std::time::Instant::now() < deadline, "{name} never reached {at_least}:\n{metrics}\n{}", ferryd.log());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn a_signed_update_in_the_repository_is_verified_cached_and_audited() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ferryd = Ferryd::spawn(dir.path(), &repository_config("riot-os.org"));
    let status = ferryd.wait_ready();
    let metrics = wait_metric(&ferryd, status.metrics_listen, "ferry_repo_manifests_accepted_total", 1.0);
    assert_eq!(sample(&metrics, "ferry_repo_rejections_total"), Some(0.0), "{metrics}");
    assert_eq!(sample(&metrics, "ferry_repo_downloaded_bytes_total"), Some(2048.0), "{metrics}");
    let status = common::status(&ferryd.socket()).expect("status");
    assert_eq!(status.counts.blobs, 3, "the envelope and both slot payloads are cached");
    assert_eq!(accepted_manifests(dir.path()), 1);
}

/// Audit rows of accepted manifests (the simulated devices add rows of their own as they are
/// discovered, so the total count says nothing here).
fn accepted_manifests(dir: &std::path::Path) -> i64 {
    let db =
        rusqlite::Connection::open_with_flags(dir.join("state/ferry.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the state database");
    db.query_row("SELECT count(*) FROM audit_log WHERE action = 'manifest accepted'", [], |r| r.get(0))
        .expect("count audit rows")
}

#[test]
fn an_update_outside_every_authority_scope_is_refused_and_nothing_is_cached() {
    // The key is known, but no authority covers this vendor: the policy calls it
    // THREAT.IMG.INCOMPATIBLE (no signer may speak for this device class).
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ferryd = Ferryd::spawn(dir.path(), &repository_config("vendor.example"));
    let status = ferryd.wait_ready();
    let metrics = wait_metric(&ferryd, status.metrics_listen, "ferry_repo_rejections_total", 1.0);
    assert_eq!(sample(&metrics, "ferry_repo_manifests_accepted_total"), Some(0.0), "{metrics}");
    assert!(ferryd.log().contains("envelope refused"), "{}", ferryd.log());
    assert!(
        metrics.contains("ferry_manifests_total{reason=\"THREAT.IMG.INCOMPATIBLE\",result=\"rejected\"} 1"),
        "{metrics}"
    );
    let status = common::status(&ferryd.socket()).expect("status");
    assert_eq!(status.counts.blobs, 0, "nothing unverified is cached");
    assert_eq!(accepted_manifests(dir.path()), 0);
}

#[test]
fn the_same_sequence_number_is_admitted_once() {
    // THREAT.IMG.EXPIRED (replay/rollback): two repositories offer the same signed manifest; the
    // second copy is not above the highest sequence number accepted, so it is refused.
    let dir = tempfile::tempdir().expect("temp dir");
    let second =
        format!("[[repository]]\nname = \"mirror\"\nurl = \"{REPOSITORY}\"\nwatch = [\"samr21-xpro/manifest.suit\"]\n");
    let config = repository_config("riot-os.org") + &second;
    let mut ferryd = Ferryd::spawn(dir.path(), &config);
    let status = ferryd.wait_ready();
    wait_metric(&ferryd, status.metrics_listen, "ferry_repo_rejections_total", 1.0);
    ferryd.wait_log("THREAT.IMG.EXPIRED");
    assert_eq!(accepted_manifests(dir.path()), 1);
}
