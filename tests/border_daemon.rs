//! ferryd's LoWPAN room on the simulated flat: once the RCP is up the border router runs as
//! RPL root (DIOs on air, counted in `ferry_net_frames_total`), hears the flat's devices, and
//! `GET /v1/topology` / `ferry topology [--json]` show ferry as the root.

mod common;

use std::time::{Duration, Instant};

use common::{ferry, scrape, test_config, Ferryd};
use ferry::border::NetTopology;
use ferry::net::ipv6;
use ferry::net::mac::MacAddr;

/// The gateway of config/sim/home.toml, under the default prefix.
fn gateway_address() -> std::net::Ipv6Addr {
    let eui = [0xf0, 0x0d, 0xfe, 0x77, 0x00, 0x00, 0x00, 0x01];
    ipv6::with_iid("fd00:f3:e5::".parse().unwrap(), ipv6::iid_from_mac(MacAddr::Ext(eui)))
}

fn labelled(scrape: &str, name_and_labels: &str) -> Option<f64> {
    scrape.lines().find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn topology_of_the_simulated_flat_has_ferry_as_root() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ferryd = Ferryd::spawn(dir.path(), &test_config(""));
    let status = ferryd.wait_radio_up();

    // The read model is published within a second of the radio coming up; the flat's
    // sleepy devices poll within a few seconds and show up as neighbours.
    let deadline = Instant::now() + Duration::from_secs(20);
    let topology = loop {
        let out = ferry(&ferryd.socket(), &["topology", "--json"]);
        if out.status.success() {
            let t: NetTopology = serde_json::from_slice(&out.stdout).expect("valid JSON");
            if !t.neighbors.is_empty() {
                break t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no topology with neighbours: {}\nlog:\n{}",
            String::from_utf8_lossy(&out.stderr),
            ferryd.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(topology.root, gateway_address());
    assert_eq!(topology.root_rank, Some(256));
    // The flat's RIOT devices join as they boot (DAOs, registrations): whatever joined so far
    // hangs under ferry, at an address under the PAN's prefix.
    let prefix = ipv6::with_iid("fd00:f3:e5::".parse().unwrap(), [0; 8]);
    assert!(
        topology
            .nodes
            .iter()
            .all(|n| n.parent == gateway_address() && n.address.segments()[..4] == prefix.segments()[..4]),
        "{topology:?}"
    );
    assert!(topology.neighbors.iter().all(|n| n.frames >= 1 && n.link.lqi > 0), "{topology:?}");

    let human = ferry(&ferryd.socket(), &["topology"]);
    assert!(human.status.success());
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.starts_with(&format!("{} (ferry, RPL root, rank 256): ", gateway_address())), "{text}");
    assert!(text.lines().next().is_some_and(|l| l.ends_with(" nodes")), "{text}");

    // DIOs go out on Trickle's schedule (first one within Imin = 4.1 s) and are counted.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let metrics = scrape(status.metrics_listen);
        let tx = labelled(&metrics, "ferry_net_frames_total{direction=\"tx\"}").unwrap_or(0.0);
        let rx = labelled(&metrics, "ferry_net_frames_total{direction=\"rx\"}").unwrap_or(0.0);
        if tx >= 1.0 && rx >= 1.0 {
            // Sleepy children's answers (RA, DIO) may be held for their polls right now.
            assert!(metrics.contains("ferry_net_indirect_frames_held "), "{metrics}");
            assert!(metrics.contains("ferry_net_tx_failures_total"), "{metrics}");
            break;
        }
        assert!(Instant::now() < deadline, "no DIO counted:\n{metrics}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn topology_says_why_there_is_none_while_the_radio_is_down() {
    let dir = tempfile::tempdir().expect("temp dir");
    // An "RCP" that never answers: the handshake cannot complete.
    let config = "[radio]\nurl = \"spinel+hdlc+forkpty:///usr/bin/env?arg=sleep&arg=600\"\nready_timeout_s = 0\n\
                  [store]\nstate_dir = \"state\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
                  [control]\nsocket = \"control.sock\"\n";
    let mut ferryd = Ferryd::spawn(dir.path(), config);
    assert!(!ferryd.wait_ready().radio.up);
    let out = ferry(&ferryd.socket(), &["topology"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the radio has not come up yet"), "{err}");
}
