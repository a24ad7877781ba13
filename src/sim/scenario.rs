//! Scenario files: the simulated PAN a [`World`](super::world::World) is built from.
//!
//! A scenario is TOML (unknown keys are refused, errors name file, line, column and key, as for
//! `ferry.toml`). Relative paths (public keys) resolve against the scenario file's folder.
//!
//! ```toml
//! seed = 42              # every random choice of the run; same seed, same run
//! channel = 26           # 802.15.4 channel of the PAN (11..=26)
//! pan_id = 0xface
//! prefix = "fd00:f3:e5::/64"   # the PAN's /64; nodes take prefix + EUI-64 (ferry.toml's default)
//!
//! [propagation]          # log-distance path loss for nodes with positions (all optional)
//! loss_at_1m_db = 40.0
//! exponent = 3.0         # 2 free space, ~3 indoors, 3.5 through walls
//! sensitivity_dbm = -95.0
//! noise_dbm = -100.0
//!
//! [gateway]              # the RCP ferryd drives
//! eui64 = "f0:0d:00:00:00:00:00:01"
//! short = 0x0000         # what ferryd is expected to set; sleepy children poll it
//! position = [0.0, 0.0]  # metres
//! tx_dbm = 0.0
//! rcp = "ferry"          # its firmware: "ferry" (holds the next frame while one is on air)
//!                        # or "ot-rcp" (one at a time, as stock OpenThread)
//!
//! [[node]]
//! name = "thermostat"
//! eui64 = "02:00:00:00:00:00:00:02"
//! short = 0x0002
//! position = [4.0, 2.5]  # or omit, and give every link in [[link]]
//! role = "leaf"          # "router" (always on, forwards, holds frames for children) or "leaf"
//! parent = "gateway"     # a router's name, or "gateway" (the default)
//! tx_dbm = -8.0
//! duty_cycle = { mode = "sleepy", poll_period_s = 30.0, jitter_s = 0.5, drift_ppm = 25.0, listen_window_ms = 20.0 }
//! board = { vendor = "riot-os.org", class = "nrf52840dk" }   # names or UUIDs
//! firmware = { version = "1.2.0", sequence = 7 }
//! keys = ["keys/riot-community.pub"]   # none: RIOT's test-only key (shared/vectors/suit)
//! failure = { flash_write_error_rate = 0.01, power_loss_at_byte = 40960, battery_percent = 12 }
//! # `failing_updates = 1`: only the first update fails (a transient failure); the next installs
//! # battery_percent: below 20 % the node refuses triggers (ferry reads it on /ferry/status);
//! # charged_at_s: at this simulated time the battery is charged to 100 %
//! # e.g. failure = { battery_percent = 12, charged_at_s = 60.0 }
//! coap_block_size = 64   # SUIT block size the node asks for (16..=1024, a power of two)
//! ferry_aware = true     # also serves /ferry/status (CBOR)
//! processing = { ed25519_verify_ms = 900.0, boot_ms = 1500.0 }   # overrides the board's defaults
//! csma_backoffs = 4      # macMaxCSMABackoffs (0..=5): RIOT's `csma_retries`, 4 by default
//!
//! [[external]]           # a ZEP peer (e.g. RIOT `native`), placed when it announces this EUI-64
//! name = "native-1"      # links may name it
//! eui64 = "02:00:00:00:00:00:00:99"
//! position = [6.0, 1.0]  # or omit, and give its links in [[link]]
//! tx_dbm = 0.0
//!
//! [bench]                # `ferry bench` on this PAN (all optional)
//! image_bytes = 100000   # size of the new image
//! limit_s = 3600.0       # virtual time per strategy before unfinished devices count as failed
//! air_time_budget = 0.6  # ferry's [plan] policy for the run
//! max_concurrent_per_parent = 2
//! install_fixed_s = 4.0  # the planner's assumed install time (default: its model's 30 s)
//! uart_baud = 460800     # the host↔RCP UART
//!
//! [[link]]               # explicit link, overrides positions
//! from = "thermostat"
//! to = "gateway"
//! prr = 0.8
//! rssi_dbm = -82
//! both_ways = true       # default
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{deserialize_located, ConfigError, Invalid, Ipv6Prefix};

/// The name links and `parent` use for the gateway.
pub const GATEWAY: &str = "gateway";
/// Upper bound on devices in one scenario (the medium holds 512 nodes; one is the gateway).
pub const MAX_DEVICES: usize = 500;

/// An EUI-64, written `02:00:00:00:00:00:00:2a` (or 16 hex digits), held most significant
/// byte first (Spinel `E` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Eui64(pub [u8; 8]);

impl TryFrom<String> for Eui64 {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        let hex: String = s.chars().filter(|c| !matches!(c, ':' | '-')).collect();
        let bad = || format!("`{s}` is not an EUI-64; write 8 hex bytes like 02:00:00:00:00:00:00:2a");
        if hex.len() != 16 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 8];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Eui64(out))
    }
}

impl From<Eui64> for String {
    fn from(e: Eui64) -> String {
        e.to_string()
    }
}

impl fmt::Display for Eui64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A whole scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_channel")]
    pub channel: u8,
    #[serde(default = "default_pan_id")]
    pub pan_id: u16,
    /// The PAN's /64: every node's global address is this prefix and its EUI-64.
    #[serde(default = "default_prefix")]
    pub prefix: Ipv6Prefix,
    #[serde(default)]
    pub propagation: Propagation,
    pub gateway: GatewaySpec,
    #[serde(default, rename = "node")]
    pub nodes: Vec<NodeSpec>,
    #[serde(default, rename = "link")]
    pub links: Vec<LinkSpec>,
    /// Where ZEP peers go on the medium, by the EUI-64 they announce; peers not listed get
    /// a default link to everyone.
    #[serde(default, rename = "external")]
    pub externals: Vec<ExternalSpec>,
    /// What `ferry bench` delivers on this PAN (`sim::bench`).
    #[serde(default)]
    pub bench: BenchSpec,
}

/// A node outside the simulator (a ZEP peer), placed by its EUI-64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalSpec {
    pub name: String,
    pub eui64: Eui64,
    #[serde(default)]
    pub position: Option<[f64; 2]>,
    #[serde(default)]
    pub tx_dbm: f64,
}

/// `[bench]`: the fleet update `ferry bench` runs on a scenario, and ferry's PAN policy for it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BenchSpec {
    /// Size of the new image (each slot's), bytes.
    pub image_bytes: u64,
    /// Virtual time one strategy may take before its unfinished devices count as failed, s.
    pub limit_s: f64,
    /// ferry's `[plan] air_time_budget` for the run (0..=1).
    pub air_time_budget: f64,
    /// ferry's `[plan] max_concurrent_per_parent` for the run.
    pub max_concurrent_per_parent: u8,
    /// The planner's assumed install time (signature check, slot switch, reboot), s; it sets
    /// when a session reads the device back. Default: the planner's own (`estimate::Model`).
    pub install_fixed_s: Option<f64>,
    /// The host↔RCP UART's speed (`[radio]` of ferry.toml; 8N1).
    pub uart_baud: u32,
}

impl Default for BenchSpec {
    fn default() -> Self {
        BenchSpec {
            image_bytes: 100_000,
            limit_s: 3600.0,
            air_time_budget: 0.6,
            max_concurrent_per_parent: 2,
            install_fixed_s: None,
            uart_baud: 460_800,
        }
    }
}

fn default_channel() -> u8 {
    26
}

fn default_pan_id() -> u16 {
    0xface
}

fn default_prefix() -> Ipv6Prefix {
    // ferry.toml's default, so ferryd and the simulated nodes agree out of the box.
    "fd00:f3:e5::/64".parse().unwrap_or_else(|_| unreachable!("a valid literal"))
}

/// Log-distance path loss parameters ([`super::link::PathLoss`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Propagation {
    pub loss_at_1m_db: f64,
    pub exponent: f64,
    pub noise_dbm: f64,
    /// Below this RSSI there is no link at all.
    pub sensitivity_dbm: f64,
    /// Frame length the link's PRR is computed for (a typical 6LoWPAN frame).
    pub psdu_len: usize,
}

impl Default for Propagation {
    fn default() -> Self {
        Propagation { loss_at_1m_db: 40.0, exponent: 3.0, noise_dbm: -100.0, sensitivity_dbm: -95.0, psdu_len: 100 }
    }
}

/// The gateway's radio (the RCP).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySpec {
    pub eui64: Eui64,
    /// The short address ferryd is expected to give the RCP; children send their polls to it.
    #[serde(default)]
    pub short: u16,
    #[serde(default)]
    pub position: Option<[f64; 2]>,
    #[serde(default)]
    pub tx_dbm: f64,
    #[serde(default)]
    pub rcp: RcpFirmware,
}

/// Which firmware the gateway's radio co-processor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RcpFirmware {
    /// ferry's `firmware-nrf-rcp`: takes the next frame while one is on air.
    #[default]
    Ferry,
    /// Stock OpenThread `ot-rcp`: one transmission at a time.
    OtRcp,
}

/// Router (always on, holds indirect frames for its sleepy children) or leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Router,
    #[default]
    Leaf,
}

/// When a device's radio is on.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DutyCycle {
    /// Radio always receiving.
    #[default]
    AlwaysOn,
    /// Radio off except every `poll_period_s` (on the device's own clock): wake, send a MAC Data
    /// Request to the parent, listen, sleep.
    Sleepy {
        poll_period_s: f64,
        /// Each period is drawn uniformly from `poll_period_s ± jitter_s`.
        #[serde(default)]
        jitter_s: f64,
        /// The device clock runs fast by this many parts per million (negative: slow).
        #[serde(default)]
        drift_ppm: f64,
        /// How long the radio stays on after the poll's ACK without Frame Pending.
        #[serde(default = "default_listen_window_ms")]
        listen_window_ms: f64,
        /// After an ACK with Frame Pending, the longest wait for the queued frame.
        #[serde(default = "default_pending_timeout_ms")]
        pending_timeout_ms: f64,
    },
}

fn default_listen_window_ms() -> f64 {
    10.0
}

fn default_pending_timeout_ms() -> f64 {
    300.0
}

/// Which manifests apply to the device (SUIT vendor/class IDs: names, or UUIDs as text).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    #[serde(default)]
    pub vendor: String,
    #[serde(default)]
    pub class: String,
}

/// The firmware installed at the start of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Firmware {
    #[serde(default = "default_version")]
    pub version: String,
    /// SUIT manifest sequence number of the installed image.
    #[serde(default)]
    pub sequence: u64,
}

fn default_version() -> String {
    "0.0.0".into()
}

impl Default for Firmware {
    fn default() -> Self {
        Firmware { version: default_version(), sequence: 0 }
    }
}

/// Failure injection for the device model that runs updates (flash, boot, battery). The MAC
/// layer only uses `battery_percent` (reported); the rest is read by the update logic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Failures {
    /// Probability that one flash page write reports an error.
    pub flash_write_error_rate: f64,
    /// A write reports success but stores wrong bytes (the digest check must catch it).
    pub corrupt_write: bool,
    /// The device loses power after writing this many bytes of the new image.
    pub power_loss_at_byte: Option<u64>,
    /// The new image fails to boot (the bootloader must fall back to the old slot).
    pub boot_failure: bool,
    /// Battery level 0..=100; low levels make a device refuse updates.
    pub battery_percent: u8,
    /// The knobs above (but the battery) hit only the first this many updates the device
    /// starts; later ones succeed (a transient failure). `None`: every update.
    pub failing_updates: Option<u32>,
    /// The battery is charged (to 100 %) at this simulated time, s.
    pub charged_at_s: Option<f64>,
}

impl Default for Failures {
    fn default() -> Self {
        Failures {
            flash_write_error_rate: 0.0,
            corrupt_write: false,
            power_loss_at_byte: None,
            boot_failure: false,
            battery_percent: 100,
            failing_updates: None,
            charged_at_s: None,
        }
    }
}

/// One simulated device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    pub eui64: Eui64,
    pub short: u16,
    #[serde(default)]
    pub position: Option<[f64; 2]>,
    #[serde(default)]
    pub role: Role,
    /// Name of the node this one polls and sends to: a router or `gateway`.
    #[serde(default = "default_parent")]
    pub parent: String,
    #[serde(default)]
    pub tx_dbm: f64,
    #[serde(default)]
    pub duty_cycle: DutyCycle,
    #[serde(default)]
    pub board: Board,
    #[serde(default)]
    pub firmware: Firmware,
    /// Public keys compiled into the firmware (PEM files), relative to the scenario file.
    #[serde(default)]
    pub keys: Vec<PathBuf>,
    #[serde(default)]
    pub failure: Failures,
    /// Block size (bytes) the node's SUIT worker asks for: RIOT's CONFIG_SUIT_COAP_BLOCKSIZE.
    #[serde(default = "default_block_size")]
    pub coap_block_size: u16,
    /// The node also serves `/ferry/status` (battery, free storage, installed sequence numbers).
    #[serde(default)]
    pub ferry_aware: bool,
    /// Device processing times; unset fields take the board's defaults.
    #[serde(default)]
    pub processing: Processing,
    /// macMaxCSMABackoffs of the node's radio: busy CCAs before a frame is dropped as a
    /// channel-access failure. RIOT's `CONFIG_IEEE802154_DEFAULT_CSMA_CA_RETRIES`, 4 by
    /// default; 802.15.4 allows 0..=5.
    #[serde(default = "default_csma_backoffs")]
    pub csma_backoffs: u8,
}

fn default_block_size() -> u16 {
    64
}

/// RIOT's and 802.15.4's default macMaxCSMABackoffs.
pub const DEFAULT_CSMA_BACKOFFS: u8 = 4;
/// The largest macMaxCSMABackoffs 802.15.4 allows.
pub const MAX_CSMA_BACKOFFS: u8 = 5;

fn default_csma_backoffs() -> u8 {
    DEFAULT_CSMA_BACKOFFS
}

/// Overrides of a device's processing times (see `sim::riot::Costs` for the board defaults).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Processing {
    /// CPU time per received CoAP block (network stack, CoAP, SUIT worker), ms.
    pub block_ms: Option<f64>,
    /// Flash programming time per byte, µs.
    pub flash_write_us_per_byte: Option<f64>,
    /// Erase time of one flash page, ms.
    pub flash_erase_ms_per_page: Option<f64>,
    /// Flash page (erase unit) size, bytes.
    pub flash_page_bytes: Option<u32>,
    /// SHA-256 time per kB (1024 bytes), ms.
    pub sha256_ms_per_kb: Option<f64>,
    /// Ed25519 signature check of one manifest, ms.
    pub ed25519_verify_ms: Option<f64>,
    /// Reboot until the radio is back, ms.
    pub boot_ms: Option<f64>,
    /// Size of each riotboot slot, bytes.
    pub slot_bytes: Option<u32>,
}

fn default_parent() -> String {
    GATEWAY.into()
}

/// An explicit link between two named nodes (or `gateway`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    pub from: String,
    pub to: String,
    /// Packet reception ratio 0..=1 before collisions.
    pub prr: f64,
    pub rssi_dbm: i8,
    #[serde(default = "default_true")]
    pub both_ways: bool,
}

fn default_true() -> bool {
    true
}

/// Why a scenario file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario file {}: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    /// Located as in `ferry.toml` errors: file, line, column, key.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

impl Scenario {
    /// Reads, parses and validates a scenario file; key paths resolve against its folder.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text =
            std::fs::read_to_string(path).map_err(|error| ScenarioError::Read { path: path.to_owned(), error })?;
        let mut s = Scenario::parse(path, &text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for node in &mut s.nodes {
            for key in &mut node.keys {
                if key.is_relative() {
                    *key = base.join(&*key);
                }
            }
        }
        Ok(s)
    }

    /// Parses and validates `text`; `path` only names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Scenario, ConfigError> {
        let s: Scenario = deserialize_located(path, text)?;
        s.validate().map_err(|(key, message)| {
            let position = locate(text, &key);
            ConfigError::Invalid(Box::new(Invalid { path: path.to_owned(), position, key: Some(key), message }))
        })?;
        Ok(s)
    }

    /// The node with `name`, if any.
    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name == name)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        if !(11..=26).contains(&self.channel) {
            return Err(("channel".into(), format!("channel {} is not a 2.4 GHz channel; use 11..=26", self.channel)));
        }
        let b = &self.bench;
        if !(b.image_bytes >= 1 && b.image_bytes <= 16 << 20) {
            return Err(("bench.image_bytes".into(), "image size must be 1 byte .. 16 MiB".into()));
        }
        if !(b.limit_s.is_finite() && b.limit_s > 0.0) {
            return Err(("bench.limit_s".into(), "the time limit must be a positive number of seconds".into()));
        }
        if !(b.air_time_budget > 0.0 && b.air_time_budget <= 1.0) {
            return Err(("bench.air_time_budget".into(), "the air-time budget is a share in (0, 1]".into()));
        }
        if b.install_fixed_s.is_some_and(|s| !(s.is_finite() && (0.0..=3600.0).contains(&s))) {
            return Err(("bench.install_fixed_s".into(), "the install time must be 0..=3600 s".into()));
        }
        if !(9600..=4_000_000).contains(&b.uart_baud) {
            return Err(("bench.uart_baud".into(), "the UART speed must be 9600..=4000000 baud".into()));
        }
        if b.max_concurrent_per_parent == 0 {
            return Err(("bench.max_concurrent_per_parent".into(), "at least one session per parent".into()));
        }
        if self.nodes.len() > MAX_DEVICES {
            return Err(("node".into(), format!("{} nodes; at most {MAX_DEVICES}", self.nodes.len())));
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut shorts: HashMap<u16, usize> = HashMap::new();
        let mut euis: HashMap<[u8; 8], usize> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let at = |field: &str| format!("node[{i}].{field}");
            if n.name == GATEWAY || n.name.is_empty() {
                return Err((at("name"), format!("`{}` is reserved or empty; pick another name", n.name)));
            }
            if let Some(j) = names.insert(&n.name, i) {
                return Err((at("name"), format!("node[{j}] is already named `{}`", n.name)));
            }
            if n.short == self.gateway.short || n.short >= 0xfffe {
                return Err((at("short"), format!("short address {:#06x} is the gateway's or reserved", n.short)));
            }
            if let Some(j) = shorts.insert(n.short, i) {
                return Err((at("short"), format!("node[{j}] already has short address {:#06x}", n.short)));
            }
            if n.eui64 == self.gateway.eui64 {
                return Err((at("eui64"), "the gateway already has this EUI-64".into()));
            }
            if n.csma_backoffs > MAX_CSMA_BACKOFFS {
                return Err((at("csma_backoffs"), format!("802.15.4 allows 0..={MAX_CSMA_BACKOFFS} CSMA backoffs")));
            }
            if let Some(j) = euis.insert(n.eui64.0, i) {
                return Err((at("eui64"), format!("node[{j}] already has EUI-64 {}", n.eui64)));
            }
            if let DutyCycle::Sleepy { poll_period_s, jitter_s, listen_window_ms, pending_timeout_ms, drift_ppm } =
                n.duty_cycle
            {
                if n.role == Role::Router {
                    return Err((at("duty_cycle"), "a router must be always-on".into()));
                }
                let ok = poll_period_s.is_finite()
                    && poll_period_s >= 0.01
                    && (0.0..poll_period_s / 2.0).contains(&jitter_s)
                    && (0.0..1000.0 * poll_period_s).contains(&listen_window_ms)
                    && (0.0..60_000.0).contains(&pending_timeout_ms)
                    && drift_ppm.abs() < 10_000.0;
                if !ok {
                    return Err((
                        at("duty_cycle"),
                        "need poll_period_s ≥ 0.01, 0 ≤ jitter_s < period/2, 0 ≤ listen_window_ms < period, \
                         0 ≤ pending_timeout_ms < 60000, |drift_ppm| < 10000"
                            .into(),
                    ));
                }
            }
            if !(16..=1024).contains(&n.coap_block_size) || !n.coap_block_size.is_power_of_two() {
                return Err((at("coap_block_size"), "a CoAP block is 16, 32, 64, 128, 256, 512 or 1024 bytes".into()));
            }
            let p = n.processing;
            let times = [p.block_ms, p.flash_write_us_per_byte, p.flash_erase_ms_per_page, p.sha256_ms_per_kb];
            let times = times.into_iter().chain([p.ed25519_verify_ms, p.boot_ms]).flatten();
            if times.into_iter().any(|t| !(0.0..3.6e6).contains(&t)) || p.flash_page_bytes == Some(0) {
                return Err((at("processing"), "times are ≥ 0 and under an hour; a flash page is > 0 bytes".into()));
            }
            let charged_ok = n.failure.charged_at_s.is_none_or(|t| t.is_finite() && t >= 0.0);
            if !(0.0..=1.0).contains(&n.failure.flash_write_error_rate)
                || n.failure.battery_percent > 100
                || !charged_ok
            {
                return Err((
                    at("failure"),
                    "flash_write_error_rate is 0..=1, battery_percent 0..=100, charged_at_s ≥ 0".into(),
                ));
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if n.parent == n.name {
                return Err((format!("node[{i}].parent"), "a node cannot be its own parent".into()));
            }
            if n.parent != GATEWAY {
                match self.node(&n.parent) {
                    Some(p) if p.role == Role::Router => {}
                    Some(_) => {
                        return Err((format!("node[{i}].parent"), format!("`{}` is not a router", n.parent)));
                    }
                    None => {
                        return Err((
                            format!("node[{i}].parent"),
                            format!("no node named `{}`; use a router's name or `gateway`", n.parent),
                        ))
                    }
                }
            }
        }
        for (i, x) in self.externals.iter().enumerate() {
            let at = |field: &str| format!("external[{i}].{field}");
            if x.name == GATEWAY || x.name.is_empty() {
                return Err((at("name"), format!("`{}` is reserved or empty; pick another name", x.name)));
            }
            if names.insert(&x.name, usize::MAX).is_some() {
                return Err((at("name"), format!("the name `{}` is taken", x.name)));
            }
            if euis.insert(x.eui64.0, usize::MAX).is_some() || x.eui64 == self.gateway.eui64 {
                return Err((at("eui64"), format!("EUI-64 {} is already used", x.eui64)));
            }
        }
        let known = |name: &str| name == GATEWAY || names.contains_key(name);
        for (i, l) in self.links.iter().enumerate() {
            for (field, name) in [("from", &l.from), ("to", &l.to)] {
                if !known(name) {
                    return Err((format!("link[{i}].{field}"), format!("no node named `{name}`")));
                }
            }
            if l.from == l.to {
                return Err((format!("link[{i}].to"), "a link needs two different nodes".into()));
            }
            if !(0.0..=1.0).contains(&l.prr) {
                return Err((format!("link[{i}].prr"), "prr is a probability, 0..=1".into()));
            }
        }
        Ok(())
    }
}

/// Where `node[3].short` or `link[0].prr` is written, for the error message.
fn locate(text: &str, key: &str) -> Option<(usize, usize)> {
    let (table, field) = key.split_once('.').unwrap_or((key, ""));
    let (table, index) = match table.split_once('[') {
        Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()?),
        None => {
            // A top-level key.
            return line_of(text, 0, |l| l.split('=').next().map(str::trim) == Some(table));
        }
    };
    let header = format!("[[{table}]]");
    let mut seen = 0usize;
    let mut start = None;
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if line.trim() == header {
            if seen == index {
                start = Some((n, offset));
            }
            seen += 1;
        }
        offset += line.len();
    }
    let (n, _) = start?;
    if field.is_empty() {
        return Some((n + 1, 1));
    }
    line_of(text, n + 1, |l| l.split('=').next().map(str::trim) == Some(field)).or(Some((n + 1, 1)))
}

/// The first line from `from` (0-based) on that matches, stopping at the next table header.
fn line_of(text: &str, from: usize, mut hit: impl FnMut(&str) -> bool) -> Option<(usize, usize)> {
    for (n, line) in text.lines().enumerate().skip(from) {
        let t = line.trim_start();
        if t.starts_with('[') {
            return None;
        }
        if hit(t) {
            return Some((n + 1, line.len() - t.len() + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
seed = 7
[gateway]
eui64 = "f0:0d:00:00:00:00:00:01"

[[node]]
name = "a"
eui64 = "0200000000000002"
short = 2
duty_cycle = { mode = "sleepy", poll_period_s = 5.0 }
"#;

    #[test]
    fn minimal_parses_with_defaults() {
        let s = Scenario::parse(Path::new("t.toml"), MINIMAL).unwrap();
        assert_eq!((s.seed, s.channel, s.pan_id), (7, 26, 0xface));
        assert_eq!(s.nodes[0].eui64.0, [2, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(s.nodes[0].parent, GATEWAY);
        assert!(
            matches!(s.nodes[0].duty_cycle, DutyCycle::Sleepy { listen_window_ms, .. } if listen_window_ms == 10.0)
        );
        assert_eq!(s.nodes[0].failure.battery_percent, 100);
    }

    #[test]
    fn node_firmware_model_fields() {
        let s = Scenario::parse(Path::new("t.toml"), MINIMAL).unwrap();
        assert_eq!((s.nodes[0].coap_block_size, s.nodes[0].ferry_aware), (64, false));
        assert_eq!(s.nodes[0].csma_backoffs, DEFAULT_CSMA_BACKOFFS);
        assert_eq!(s.prefix.to_string(), "fd00:f3:e5::/64");
        let ok = format!("{MINIMAL}coap_block_size = 512\nprocessing = {{ block_ms = 16.0, boot_ms = 800.0 }}\n");
        let s = Scenario::parse(Path::new("t.toml"), &ok).unwrap();
        assert_eq!((s.nodes[0].coap_block_size, s.nodes[0].processing.block_ms), (512, Some(16.0)));
        for bad in
            ["coap_block_size = 100", "coap_block_size = 2048", "processing = { block_ms = -1.0 }", "csma_backoffs = 6"]
        {
            let e = Scenario::parse(Path::new("t.toml"), &format!("{MINIMAL}{bad}\n")).unwrap_err().to_string();
            assert!(e.contains("node[0]"), "{bad}: {e}");
        }
    }

    #[test]
    fn errors_are_located() {
        let bad = MINIMAL.replace("short = 2", "short = 2\nbogus = 1");
        let e = Scenario::parse(Path::new("t.toml"), &bad).unwrap_err().to_string();
        assert!(e.starts_with("t.toml:") && e.contains("bogus"), "{e}");
        let bad = MINIMAL.replace("short = 2", "short = 0");
        let e = Scenario::parse(Path::new("t.toml"), &bad).unwrap_err().to_string();
        assert!(e.contains("t.toml:9:1: key `node[0].short`"), "{e}");
        let bad = format!("{MINIMAL}parent = \"nobody\"\n");
        let e = Scenario::parse(Path::new("t.toml"), &bad).unwrap_err().to_string();
        assert!(e.contains("node[0].parent") && e.contains("nobody"), "{e}");
        let bad = MINIMAL.replace("0200000000000002", "02zz");
        let e = Scenario::parse(Path::new("t.toml"), &bad).unwrap_err().to_string();
        assert!(e.contains("not an EUI-64"), "{e}");
    }
}
