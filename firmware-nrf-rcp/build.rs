//! Picks the board's `memory.x` (exactly one `board-*` feature) and puts it where the linker
//! script `link.x` of cortex-m-rt looks for it; adds defmt's linker script with `defmt`.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let dk = env::var_os("CARGO_FEATURE_BOARD_DK").is_some();
    let dongle = env::var_os("CARGO_FEATURE_BOARD_DONGLE").is_some();
    let memory = match (dk, dongle) {
        (true, false) => "memory-dk.x",
        (false, true) => "memory-dongle.x",
        _ => panic!("enable exactly one of the features `board-dk` or `board-dongle`"),
    };
    // `core/` must keep building for the host, so the target is not a config default: say so.
    let target = env::var("TARGET").unwrap_or_default();
    if target != "thumbv7em-none-eabihf" {
        panic!(
            "ferry-rcp runs on the nRF52840: build with `--target thumbv7em-none-eabihf` \
             (e.g. `cargo build-dk`), not for {target}"
        );
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy(memory, out.join("memory.x")).expect("copy memory.x into OUT_DIR");
    println!("cargo:rustc-link-search={}", out.display());
    // Route six of the 802.15.4 driver's callouts through src/callouts.rs (see there).
    for callout in [
        "nrf_802154_tx_ack_started",
        "nrf_802154_transmitted_raw",
        "nrf_802154_transmit_failed",
        "nrf_802154_energy_detected",
        "nrf_802154_energy_detection_failed",
        "nrf_802154_received_raw",
    ] {
        println!("cargo:rustc-link-arg=--wrap={callout}");
    }
    // defmt's linker script, only when defmt is linked in (it is not found otherwise).
    if env::var_os("CARGO_FEATURE_DEFMT").is_some() {
        println!("cargo:rustc-link-arg=-Tdefmt.x");
    }
    println!("cargo:rerun-if-changed={memory}");
    println!("cargo:rerun-if-changed=build.rs");
}
