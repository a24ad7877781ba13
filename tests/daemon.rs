//! ferryd as a user runs it: the real binary, its signals, its state dir, its endpoints.

mod common;

use std::process::{Command, Stdio};

use common::{have_tool, sample, scrape, test_config, Ferryd};

#[test]
fn status_and_metrics_of_a_running_daemon() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ferryd = Ferryd::spawn(dir.path(), &test_config(""));
    let status = ferryd.wait_ready();
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(status.pid, ferryd.pid());
    assert!(!status.radio.up, "no radio driver exists yet, so the radio must be reported down");
    assert_eq!(status.store.state_dir, dir.path().join("state"));
    assert_eq!(status.store.schema_version, ferry::store::latest_schema_version());
    assert_eq!(status.store.runs.runs, 1);

    // The human view names the same facts.
    let human = common::ferry(&ferryd.socket(), &["status"]);
    assert!(human.status.success());
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains(&format!("pid {}", ferryd.pid())), "{text}");
    assert!(text.contains("radio:    down"), "{text}");

    let metrics = scrape(status.metrics_listen);
    assert_eq!(sample(&metrics, "ferry_rcp_up"), Some(0.0), "{metrics}");
    assert_eq!(sample(&metrics, "ferry_config_reload_failures_total"), Some(0.0));
    assert!(sample(&metrics, "process_resident_memory_bytes").is_some_and(|rss| rss > 0.0), "{metrics}");
    assert!(sample(&metrics, "process_open_fds").is_some(), "{metrics}");
    assert!(metrics.contains("ferry_build_info{version=\""), "{metrics}");

    // Prometheus' own linter accepts the live scrape.
    if have_tool("promtool") {
        let mut promtool = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn promtool");
        std::io::Write::write_all(&mut promtool.stdin.take().expect("stdin"), metrics.as_bytes()).expect("feed");
        let out = promtool.wait_with_output().expect("promtool");
        let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && report.trim().is_empty(), "promtool check metrics:\n{report}\n{metrics}");
    }
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
        "[radio]\nurl = \"sim:home.toml\"\n[store]\nstate_dir = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
         [control]\nsocket = \"control.sock\"\n",
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
    use std::os::unix::net::UnixDatagram;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().expect("temp dir");
    let notify_path = dir.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&notify_path).expect("bind a notify socket");
    systemd.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    std::fs::write(dir.path().join("ferry.toml"), test_config("")).expect("config");
    // systemd names the watched pid; `exec` keeps the shell's pid for ferryd.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"WATCHDOG_PID=$$ exec "$0" --config "$1""#)
        .arg(env!("CARGO_BIN_EXE_ferryd"))
        .arg(dir.path().join("ferry.toml"))
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ferryd");

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
    assert!(heard[0].contains("READY=1") && heard[0].contains("STATUS=radio down"), "{heard:?}");
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
