//! ferry's configuration: `/etc/ferry/ferry.toml`, written by the admin.
//!
//! The schema lives here, in one place, so every room extends the same types. Unknown keys are
//! rejected; every error names the file, the line and column, the key, and what is allowed.
//! Relative paths resolve against the folder of the config file.

mod radio_url;
mod types;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::schedule::plan::{ApprovalMode, PanPolicy, SkipFrom};
use crate::schedule::{Length, WeeklySpan, Window};

pub use radio_url::RadioUrl;
pub use types::{Channel, Ipv6Prefix, LogLevel, PanId, RepositoryUrl};

/// Where the admin's configuration lives when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/ferry/ferry.toml";
/// Where the control socket lives when neither the config nor the command line says otherwise.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/ferry/control.sock";
/// Prometheus exporters register their ports; 9478 is the one ferry uses by default.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9478";

/// The whole configuration, as read from `ferry.toml` with defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub log: LogConfig,
    pub radio: RadioConfig,
    #[serde(default)]
    pub network: NetworkConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub control: ControlConfig,
    #[serde(default)]
    pub coap: CoapConfig,
    #[serde(default)]
    pub owner_files: OwnerFilesConfig,
    #[serde(default)]
    pub plan: PlanConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default, rename = "repository", skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<RepositoryConfig>,
    #[serde(default, rename = "authority", skip_serializing_if = "Vec::is_empty")]
    pub authorities: Vec<AuthorityConfig>,
    #[serde(default, rename = "owner", skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<OwnerConfig>,
    #[serde(default, rename = "group", skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupConfig>,
    #[serde(default, rename = "kernel_device", skip_serializing_if = "Vec::is_empty")]
    pub kernel_devices: Vec<KernelDeviceConfig>,
}

/// `[log]`: the level when `RUST_LOG` is not set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub level: LogLevel,
}

/// `[radio]`: how ferryd reaches the air.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadioConfig {
    /// `spinel+hdlc+uart:///dev/ttyACM0?uart-baudrate=460800`, `spinel+hdlc+forkpty:///path?arg=..`,
    /// or `sim:scenario.toml`.
    pub url: RadioUrl,
    /// How long start-up waits for the radio before telling systemd it is ready anyway (the
    /// cache, metrics and control socket are useful without it).
    #[serde(default = "RadioConfig::default_ready_timeout_s")]
    pub ready_timeout_s: u64,
    /// How long the radio may stay unreachable before ferryd stops feeding systemd's watchdog,
    /// so that systemd restarts it.
    #[serde(default = "RadioConfig::default_unreachable_grace_s")]
    pub unreachable_grace_s: u64,
}

impl RadioConfig {
    fn default_ready_timeout_s() -> u64 {
        30
    }
    fn default_unreachable_grace_s() -> u64 {
        300
    }
}

/// `[network]`: the PAN ferry is the border router of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    #[serde(default = "NetworkConfig::default_channel")]
    pub channel: Channel,
    #[serde(default = "NetworkConfig::default_pan_id")]
    pub pan_id: PanId,
    /// The /64 the devices get their addresses from; a ULA by default.
    #[serde(default = "NetworkConfig::default_prefix")]
    pub prefix: Ipv6Prefix,
    /// ferry's 802.15.4 short address; the border router is the PAN coordinator, 0x0000.
    #[serde(default)]
    pub short_address: u16,
}

impl NetworkConfig {
    fn default_channel() -> Channel {
        Channel::new(26).expect("26 is an 802.15.4 O-QPSK channel")
    }
    fn default_pan_id() -> PanId {
        PanId(0xface)
    }
    fn default_prefix() -> Ipv6Prefix {
        "fd00:f3:e5::/64".parse().expect("the default prefix parses")
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            channel: Self::default_channel(),
            pan_id: Self::default_pan_id(),
            prefix: Self::default_prefix(),
            short_address: 0x0000,
        }
    }
}

/// `[store]`: where ferry keeps its database and cached updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default = "StoreConfig::default_state_dir")]
    pub state_dir: PathBuf,
    /// Upper bound for cached payloads and envelopes, in MiB.
    #[serde(default = "StoreConfig::default_cache_max_mib")]
    pub cache_max_mib: u64,
}

impl StoreConfig {
    fn default_state_dir() -> PathBuf {
        PathBuf::from("/var/lib/ferry")
    }
    fn default_cache_max_mib() -> u64 {
        1024
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { state_dir: Self::default_state_dir(), cache_max_mib: Self::default_cache_max_mib() }
    }
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(default = "MetricsConfig::default_listen")]
    #[serde(deserialize_with = "types::socket_addr")]
    pub listen: SocketAddr,
}

impl MetricsConfig {
    fn default_listen() -> SocketAddr {
        DEFAULT_METRICS_LISTEN.parse().expect("the default metrics address parses")
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { listen: Self::default_listen() }
    }
}

/// `[control]`: the Unix socket the `ferry` CLI talks to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    #[serde(default = "ControlConfig::default_socket")]
    pub socket: PathBuf,
}

impl ControlConfig {
    fn default_socket() -> PathBuf {
        PathBuf::from(DEFAULT_CONTROL_SOCKET)
    }
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig { socket: Self::default_socket() }
    }
}

/// `[coap]`: extra UDP addresses the CoAP endpoint serves on, besides the 6LoWPAN side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CoapConfig {
    #[serde(default, deserialize_with = "types::socket_addrs")]
    pub listen: Vec<SocketAddr>,
    /// Where to look for kernel devices with `GET /.well-known/core`: all-CoAP-nodes on a link
    /// (`"ff02::fd%tap0"`, RFC 7252 §12.8) or unicast addresses, `[addr%iface]:port` for a port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discover: Vec<String>,
}

/// `[[kernel_device]]`: a device ferry reaches through the kernel's IP stack rather than its own
/// radio: a Thread network behind OTBR, a Linux `wpan` interface, RIOT `native` on a tap. It is
/// triggered and served over `[coap] listen` (its manifests' URIs name that address), planned
/// by the same rules, and listed in a `[[group]]` by its EUI-64 like any device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelDeviceConfig {
    /// Where the device answers CoAP (a global or ULA address: a link-local one needs an
    /// interface, which this does not name).
    pub address: std::net::Ipv6Addr,
    #[serde(default = "KernelDeviceConfig::default_port")]
    pub port: u16,
    /// The device's EUI-64; by default the one its address's interface ID is made from
    /// (RFC 4291 appendix A: the U/L bit flipped back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eui64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// On mains (RIOT native, a Thread router): the battery rule does not hold it back. A
    /// battery device must report its battery in `/ferry/status`.
    #[serde(default)]
    pub mains_powered: bool,
    /// Free storage for an image, for a device that does not report it in `/ferry/status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_storage_bytes: Option<u64>,
    /// The sequence number the device runs, for one that cannot say (RIOT native answers
    /// `/suit/version` with "NONE"); without it, and without a report, nothing is planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_sequence: Option<u64>,
}

impl KernelDeviceConfig {
    fn default_port() -> u16 {
        5683
    }

    /// The configured EUI-64, else the one in the address's interface ID.
    pub fn eui64(&self) -> Result<crate::fleet::Eui64, crate::fleet::device::Eui64Error> {
        match &self.eui64 {
            Some(text) => crate::fleet::device::parse_eui64(text),
            None => Ok(Self::eui64_of(&self.address)),
        }
    }

    /// The EUI-64 an address's interface ID is made from (RFC 4291 appendix A).
    pub fn eui64_of(address: &std::net::Ipv6Addr) -> crate::fleet::Eui64 {
        let mut eui = crate::net::ipv6::iid(address);
        eui[0] ^= 0x02;
        crate::fleet::Eui64(eui)
    }

    pub fn socket_addr(&self) -> std::net::SocketAddrV6 {
        std::net::SocketAddrV6::new(self.address, self.port, 0, 0)
    }
}

/// A `[coap] discover` entry as a socket address: `ff02::fd%tap0`, `[ff02::fd%tap0]:5683`,
/// `fd00::2`. The interface of a link-local or multicast address becomes its scope ID.
pub fn parse_discover_target(text: &str) -> Result<std::net::SocketAddrV6, String> {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').ok_or_else(|| format!("`{text}`: no closing `]`"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| format!("`{text}`: `{p}` is not a port"))?,
                None if after.is_empty() => crate::border::COAP_PORT,
                None => return Err(format!("`{text}`: expected `:PORT` after `]`")),
            };
            (host, port)
        }
        None => (text, crate::border::COAP_PORT),
    };
    let (address, interface) = match host.split_once('%') {
        Some((a, i)) => (a, Some(i)),
        None => (host, None),
    };
    let address: std::net::Ipv6Addr =
        address.parse().map_err(|_| format!("`{text}`: `{address}` is not an IPv6 address"))?;
    let scope = match interface {
        None => 0,
        Some(i) => match i.parse::<u32>() {
            Ok(index) => index,
            Err(_) => interface_index(i).ok_or_else(|| format!("`{text}`: no network interface `{i}`"))?,
        },
    };
    let link_scoped =
        (address.is_multicast() && (address.segments()[0] & 0x000f) <= 2) || address.is_unicast_link_local();
    if link_scoped && scope == 0 {
        return Err(format!("`{text}`: a link-scoped address needs its interface, as in `ff02::fd%tap0`"));
    }
    Ok(std::net::SocketAddrV6::new(address, port, 0, scope))
}

pub fn interface_index(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// `[owner_files]`: where owners keep their windows and blackouts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerFilesConfig {
    /// One `<owner>.toml` per owner (see docs/owners.md); relative to this file's folder, so
    /// `/etc/ferry/owners.d` for `/etc/ferry/ferry.toml`.
    #[serde(default = "OwnerFilesConfig::default_dir")]
    pub dir: PathBuf,
}

impl OwnerFilesConfig {
    fn default_dir() -> PathBuf {
        PathBuf::from("owners.d")
    }
}

impl Default for OwnerFilesConfig {
    fn default() -> Self {
        OwnerFilesConfig { dir: Self::default_dir() }
    }
}

/// `[[repository]]`: an upstream source of signed updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    pub name: String,
    /// A folder (`file:///path` or a path), `https://host/path` or `coap://host/path`.
    pub url: RepositoryUrl,
    /// Seconds between polls of the repository's index.
    #[serde(default = "RepositoryConfig::default_poll_interval_s")]
    pub poll_interval_s: u64,
    /// The repository's index signing key (path or inline key); without one, only `watch` paths
    /// are followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_key: Option<String>,
    /// Manifest paths followed in repositories without a signed index (RIOT-style folders).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<String>,
    /// Upstream bandwidth limit for downloads from this repository, KiB per second (HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate_kib_s: Option<u64>,
}

impl RepositoryConfig {
    fn default_poll_interval_s() -> u64 {
        300
    }
}

/// `[[authority]]`: a signer and what it may sign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorityConfig {
    pub name: String,
    /// Public keys: raw hex, base64, inline PEM or PEM file paths, each optionally with a
    /// validity window for rotation.
    pub keys: Vec<AuthorityKey>,
    /// How many of `keys` must have signed.
    #[serde(default = "AuthorityConfig::default_threshold")]
    pub threshold: usize,
    #[serde(default)]
    pub scope: ScopeConfig,
    /// Whether this authority's updates install on their own (`automatic`) or wait for
    /// `ferry update approve` (`manual`).
    #[serde(default)]
    pub approval: ApprovalMode,
}

impl AuthorityConfig {
    fn default_threshold() -> usize {
        1
    }
}

/// One key of an authority: the plain string form, or a table with a validity window so a
/// key can be rotated in (`not_before`) and out (`not_after`) without editing the list on
/// the day. Times are RFC 3339 with an offset, e.g. `2027-01-01T00:00:00Z`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AuthorityKey {
    Plain(String),
    Window(KeyWindow),
}

/// `{ key = "...", not_before = ..., not_after = ... }` in an authority's `keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyWindow {
    pub key: String,
    /// The key signs nothing before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<toml::value::Datetime>,
    /// The key signs nothing from this instant on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<toml::value::Datetime>,
}

impl AuthorityKey {
    /// The key text (hex, base64, PEM or a path).
    pub fn key(&self) -> &str {
        match self {
            AuthorityKey::Plain(k) => k,
            AuthorityKey::Window(w) => &w.key,
        }
    }

    fn key_mut(&mut self) -> &mut String {
        match self {
            AuthorityKey::Plain(k) => k,
            AuthorityKey::Window(w) => &mut w.key,
        }
    }

    pub fn not_before(&self) -> Option<&toml::value::Datetime> {
        match self {
            AuthorityKey::Plain(_) => None,
            AuthorityKey::Window(w) => w.not_before.as_ref(),
        }
    }

    pub fn not_after(&self) -> Option<&toml::value::Datetime> {
        match self {
            AuthorityKey::Plain(_) => None,
            AuthorityKey::Window(w) => w.not_after.as_ref(),
        }
    }
}

// Hand-written rather than `#[serde(untagged)]`, so a typo inside the table form is reported
// as that field ("unknown field `not_afer`") instead of "did not match any variant".
impl<'de> Deserialize<'de> for AuthorityKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AuthorityKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key string, or a table { key = \"...\", not_before = ..., not_after = ... }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AuthorityKey, E> {
                Ok(AuthorityKey::Plain(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<AuthorityKey, A::Error> {
                KeyWindow::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(AuthorityKey::Window)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl From<&str> for AuthorityKey {
    fn from(key: &str) -> Self {
        AuthorityKey::Plain(key.to_owned())
    }
}

/// What an authority may sign: vendor, class and component IDs, `*` for any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ScopeConfig {
    #[serde(default)]
    pub vendor_ids: Vec<String>,
    #[serde(default)]
    pub class_ids: Vec<String>,
    #[serde(default)]
    pub component_ids: Vec<String>,
}

/// `[plan]`: PAN-wide limits of the scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    /// Largest share of the channel's time ferry's sessions may use together (0 < x ≤ 1).
    #[serde(default = "PlanConfig::default_air_time_budget")]
    pub air_time_budget: f64,
    /// At most this many sessions at once among the children of one parent; a sleepy child's
    /// session counts as the share of the time its polls let it use (`schedule::plan::parent_slots`).
    #[serde(default = "PlanConfig::default_max_concurrent_per_parent")]
    pub max_concurrent_per_parent: u8,
    /// CoAP Block2 size the devices fetch with (16, 32, …, 1024); RIOT's default is 64.
    #[serde(default = "PlanConfig::default_block_size")]
    pub block_size: u16,
    /// How long before its deferral deadline a security update starts regardless of windows.
    #[serde(default = "PlanConfig::default_deadline_lead")]
    pub deadline_lead: Length,
}

impl PlanConfig {
    fn default_air_time_budget() -> f64 {
        0.6
    }
    fn default_max_concurrent_per_parent() -> u8 {
        2
    }
    fn default_block_size() -> u16 {
        64
    }
    fn default_deadline_lead() -> Length {
        Length::from_minutes(6 * 60)
    }

    /// The scheduler's view.
    pub fn pan_policy(&self) -> PanPolicy {
        PanPolicy {
            air_time_budget: self.air_time_budget,
            max_concurrent_per_parent: self.max_concurrent_per_parent,
            block_size: self.block_size,
            deadline_lead: self.deadline_lead.duration(),
        }
    }

    fn validate(&self) -> Result<(), (String, String)> {
        if !(self.air_time_budget > 0.0 && self.air_time_budget <= 1.0) {
            return Err(("plan.air_time_budget".into(), "must be above 0 and at most 1 (0.6 is 60 %)".into()));
        }
        if self.max_concurrent_per_parent == 0 {
            return Err(("plan.max_concurrent_per_parent".into(), "must be at least 1".into()));
        }
        if !self.block_size.is_power_of_two() || !(16..=1024).contains(&self.block_size) {
            return Err((
                "plan.block_size".into(),
                "must be a CoAP block size: 16, 32, 64, 128, 256, 512 or 1024".into(),
            ));
        }
        Ok(())
    }
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            air_time_budget: Self::default_air_time_budget(),
            max_concurrent_per_parent: Self::default_max_concurrent_per_parent(),
            block_size: Self::default_block_size(),
            deadline_lead: Self::default_deadline_lead(),
        }
    }
}

/// `[delivery]`: how often ferry tries again when a delivery fails. A group's `[group.policy]`
/// may set its own `max_attempts` and `retry_backoff_s`.
///
/// Two levels: inside one session, a lost request (no answer, a timeout, 5.xx) is retried
/// `session_retries` times, `session_backoff_s` apart (doubling); a session that ends failed or
/// rolled back counts as one attempt of that update on that device, and the next session starts
/// `retry_backoff_s` later (doubling per attempt, at most a day), until `max_attempts` sessions
/// have failed. Attempts are kept in the state dir, so a restart does not reset them. A reload
/// changes the policy between sessions; the one inside a session is read when ferryd starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Sessions per device and update before ferry gives up on it (failed or rolled back).
    #[serde(default = "DeliveryConfig::default_max_attempts")]
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubled after each further one.
    #[serde(default = "DeliveryConfig::default_retry_backoff_s")]
    pub retry_backoff_s: u64,
    /// Lost requests one session survives before it ends failed.
    #[serde(default = "DeliveryConfig::default_session_retries")]
    pub session_retries: u32,
    /// Wait before a session retries a lost request; doubled each time.
    #[serde(default = "DeliveryConfig::default_session_backoff_s")]
    pub session_backoff_s: u64,
}

impl DeliveryConfig {
    fn default_max_attempts() -> u32 {
        3
    }
    fn default_retry_backoff_s() -> u64 {
        600
    }
    fn default_session_retries() -> u32 {
        3
    }
    fn default_session_backoff_s() -> u64 {
        30
    }

    /// The policy between sessions.
    pub fn retry_policy(&self) -> crate::deliver::RetryPolicy {
        crate::deliver::RetryPolicy {
            max_attempts: self.max_attempts,
            backoff: std::time::Duration::from_secs(self.retry_backoff_s),
            backoff_max: std::time::Duration::from_secs(24 * 3600),
        }
    }

    /// The engine's knobs inside one session.
    pub fn engine_config(&self) -> crate::deliver::EngineConfig {
        let backoff = std::time::Duration::from_secs(self.session_backoff_s);
        crate::deliver::EngineConfig {
            max_failures: self.session_retries.saturating_add(1),
            backoff,
            backoff_max: backoff.max(crate::deliver::EngineConfig::default().backoff_max),
            ..crate::deliver::EngineConfig::default()
        }
    }

    fn validate(&self) -> Result<(), (String, String)> {
        if self.max_attempts == 0 {
            return Err(("delivery.max_attempts".into(), "must be at least 1".into()));
        }
        for (key, value) in [("retry_backoff_s", self.retry_backoff_s), ("session_backoff_s", self.session_backoff_s)] {
            if !(1..=MAX_BACKOFF_S).contains(&value) {
                return Err((format!("delivery.{key}"), format!("backoffs are 1 s to {MAX_BACKOFF_S} s (a day)")));
            }
        }
        Ok(())
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_attempts: Self::default_max_attempts(),
            retry_backoff_s: Self::default_retry_backoff_s(),
            session_retries: Self::default_session_retries(),
            session_backoff_s: Self::default_session_backoff_s(),
        }
    }
}

/// `[[owner]]`: a person or party holding rights over groups of devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerConfig {
    pub name: String,
    /// The unix uid the owner's control-socket requests and `owners.d` file come from.
    pub uid: u32,
    /// When an occupant's lease ends; their settings are ignored afterwards. A time without an
    /// offset, or a bare date (midnight), is read as UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_end: Option<toml::value::Datetime>,
}

impl OwnerConfig {
    /// `lease_end` as an instant; `Err` with a message when it is not a date or date-time.
    pub fn lease_end_at(&self) -> Result<Option<jiff::Timestamp>, String> {
        let Some(end) = &self.lease_end else { return Ok(None) };
        let Some(date) = end.date else { return Err(format!("`{end}` has no date")) };
        let time = end.time.unwrap_or(toml::value::Time { hour: 0, minute: 0, second: 0, nanosecond: 0 });
        let civil = jiff::civil::DateTime::new(
            date.year as i16,
            date.month as i8,
            date.day as i8,
            time.hour as i8,
            time.minute as i8,
            time.second as i8,
            time.nanosecond as i32,
        )
        .map_err(|e| format!("`{end}` is not a valid date-time: {e}"))?;
        let offset = match end.offset {
            None | Some(toml::value::Offset::Z) => jiff::tz::Offset::UTC,
            Some(toml::value::Offset::Custom { minutes }) => jiff::tz::Offset::from_seconds(i32::from(minutes) * 60)
                .map_err(|e| format!("`{end}` has a bad offset: {e}"))?,
        };
        offset.to_timestamp(civil).map(Some).map_err(|e| format!("`{end}` is out of range: {e}"))
    }
}

/// `[[group]]`: devices that share owners, time zone and policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub name: String,
    /// Device EUI-64s, as `00:11:22:33:44:55:66:77` or 16 hex digits.
    #[serde(default)]
    pub devices: Vec<String>,
    /// The owner who sets policy (the landlord).
    pub admin: String,
    /// The owner who may set windows within the admin's limits (the tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occupant: Option<String>,
    /// IANA time zone the group's windows are written in.
    #[serde(default = "GroupConfig::default_timezone")]
    pub timezone: String,
    /// `[group.policy]`: the admin's default windows and the limits on the occupant's.
    #[serde(default)]
    pub policy: GroupPolicy,
}

/// The longest retry backoff `[delivery]` or a group may set: a day, the longest wait the
/// retry policy makes (its doubling stops there).
pub const MAX_BACKOFF_S: u64 = 24 * 3600;
/// The longest repository poll interval: a week.
pub const MAX_POLL_INTERVAL_S: u64 = 7 * 24 * 3600;
/// The highest download rate limit, KiB/s (1 GiB/s; beyond it, leave the limit out).
pub const MAX_RATE_KIB_S: u64 = 1 << 20;

/// `[group.policy]`: what the admin allows the occupant's `owners.d` file to set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupPolicy {
    /// Windows used when no owner file sets any; with none, installs may happen any time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
    /// Weekly spans the occupant's windows must lie within; empty allows any time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub occupant_hours: Vec<WeeklySpan>,
    /// Least window time per week the occupant's windows must add up to, so security updates
    /// still find a slot.
    #[serde(default = "GroupPolicy::default_min_weekly_open")]
    pub min_weekly_open: Length,
    /// Longest the occupant's windows and blackouts together may keep the group closed, and
    /// longest a security update may wait for a window: by then it starts regardless.
    #[serde(default = "GroupPolicy::default_max_deferral")]
    pub max_deferral: Length,
    /// Readiness: a battery-powered device below this charge is not updated.
    #[serde(default = "GroupPolicy::default_min_battery_percent")]
    pub min_battery_percent: u8,
    /// Readiness: weakest RSSI of the device's link to its parent, dBm.
    #[serde(default = "GroupPolicy::default_min_rssi_dbm")]
    pub min_rssi_dbm: i16,
    /// Readiness: lowest LQI of the device's link.
    #[serde(default)]
    pub min_lqi: u8,
    /// Readiness: highest ETX (expected transmissions per frame) of the device's link.
    #[serde(default = "GroupPolicy::default_max_etx")]
    pub max_etx: f64,
    /// From which urgency on updates may install outside the windows: `never`, `security`,
    /// `critical`.
    #[serde(default = "GroupPolicy::default_skip_windows_from")]
    pub skip_windows_from: SkipFrom,
    /// From which urgency on updates may install during blackouts.
    #[serde(default = "GroupPolicy::default_skip_blackouts_from")]
    pub skip_blackouts_from: SkipFrom,
    /// Sessions per device and update before ferry gives up on it; `[delivery] max_attempts`
    /// when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Wait after a group member's first failed attempt, s (doubled after each further one);
    /// `[delivery] retry_backoff_s` when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff_s: Option<u64>,
}

impl GroupPolicy {
    fn default_min_weekly_open() -> Length {
        Length::from_minutes(2 * 60)
    }
    fn default_max_deferral() -> Length {
        Length::from_minutes(14 * 24 * 60)
    }
    fn default_min_battery_percent() -> u8 {
        30
    }
    fn default_min_rssi_dbm() -> i16 {
        -90
    }
    fn default_max_etx() -> f64 {
        3.0
    }
    fn default_skip_windows_from() -> SkipFrom {
        SkipFrom::Critical
    }
    fn default_skip_blackouts_from() -> SkipFrom {
        SkipFrom::Never
    }
}

impl Default for GroupPolicy {
    fn default() -> Self {
        GroupPolicy {
            windows: Vec::new(),
            occupant_hours: Vec::new(),
            min_weekly_open: Self::default_min_weekly_open(),
            max_deferral: Self::default_max_deferral(),
            min_battery_percent: Self::default_min_battery_percent(),
            min_rssi_dbm: Self::default_min_rssi_dbm(),
            min_lqi: 0,
            max_etx: Self::default_max_etx(),
            skip_windows_from: Self::default_skip_windows_from(),
            skip_blackouts_from: Self::default_skip_blackouts_from(),
            max_attempts: None,
            retry_backoff_s: None,
        }
    }
}

impl GroupConfig {
    fn default_timezone() -> String {
        "UTC".to_owned()
    }

    /// The listed devices; entries that do not parse are skipped (`Config::parse` refuses them).
    pub fn device_euis(&self) -> impl Iterator<Item = crate::fleet::Eui64> + '_ {
        self.devices.iter().filter_map(|text| crate::fleet::device::parse_eui64(text).ok())
    }
}

impl Config {
    /// The `[[group]]` named `name`.
    pub fn group(&self, name: &str) -> Option<&GroupConfig> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The retry policy between sessions for a member of `group`: `[delivery]`, with what the
    /// group's policy sets instead.
    pub fn retry_policy_for(&self, group: Option<&str>) -> crate::deliver::RetryPolicy {
        let mut policy = self.delivery.retry_policy();
        if let Some(p) = group.and_then(|name| self.group(name)).map(|g| &g.policy) {
            policy.max_attempts = p.max_attempts.unwrap_or(policy.max_attempts);
            policy.backoff = p.retry_backoff_s.map_or(policy.backoff, std::time::Duration::from_secs);
        }
        policy
    }

    /// The group whose `devices` list `device`.
    pub fn group_listing(&self, device: crate::fleet::Eui64) -> Option<&GroupConfig> {
        self.groups.iter().find(|g| g.device_euis().any(|e| e == device))
    }

    /// The `[[owner]]` named `name`.
    pub fn owner(&self, name: &str) -> Option<&OwnerConfig> {
        self.owners.iter().find(|o| o.name == name)
    }
}

/// A configuration that was read from a file, with the file it came from (SIGHUP re-reads it).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedConfig {
    pub path: PathBuf,
    pub config: Config,
}

/// Why a configuration was refused. The message says where and what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Invalid(Box<Invalid>),
}

/// A configuration that is readable but wrong, located as precisely as the parser allows.
#[derive(Debug)]
pub struct Invalid {
    pub path: PathBuf,
    /// 1-based line and column, when the error points at a place in the file.
    pub position: Option<(usize, usize)>,
    /// The dotted key, e.g. `network.channel` or `group[1].admin`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl ConfigError {
    fn invalid(path: &Path, position: Option<(usize, usize)>, key: Option<String>, message: String) -> Self {
        ConfigError::Invalid(Box::new(Invalid { path: path.to_owned(), position, key, message }))
    }
}

impl LoadedConfig {
    /// Reads, parses and validates `path`; relative paths inside resolve against its folder.
    pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
        let path = &std::path::absolute(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let mut config = Config::parse(path, &text)?;
        config.resolve_paths(path.parent().unwrap_or(Path::new("/")));
        Ok(LoadedConfig { path: path.to_owned(), config })
    }
}

impl Config {
    /// Parses and validates `text`; `path` is only used in error messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = deserialize_located(path, text)?;
        config.validate().map_err(|(key, message)| {
            let position = locate_key(text, &key);
            ConfigError::invalid(path, position, Some(key), message)
        })?;
        Ok(config)
    }

    /// The effective configuration as TOML, defaults filled in (`ferryd --check-config`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
    }

    fn resolve_paths(&mut self, base: &Path) {
        resolve_path(&mut self.store.state_dir, base);
        resolve_path(&mut self.control.socket, base);
        resolve_path(&mut self.owner_files.dir, base);
        self.radio.url.resolve_paths(base);
        for repository in &mut self.repositories {
            if let RepositoryUrl::Dir(dir) = &mut repository.url {
                resolve_path(dir, base);
            }
        }
        // Key files are the only authority strings that name a path; inline keys stay as written.
        for authority in &mut self.authorities {
            for key in &mut authority.keys {
                let text = key.key_mut();
                if crate::suit::policy::parse_inline_key(text).is_none() {
                    let mut path = PathBuf::from(text.as_str());
                    resolve_path(&mut path, base);
                    *text = path.to_string_lossy().into_owned();
                }
            }
        }
    }

    /// Rules that span several keys; returns the key at fault and what is wrong.
    fn validate(&self) -> Result<(), (String, String)> {
        self.plan.validate()?;
        self.delivery.validate()?;
        unique_names("repository", self.repositories.iter().map(|r| r.name.as_str()))?;
        for (i, repository) in self.repositories.iter().enumerate() {
            // 0 polls every second, as before.
            if repository.poll_interval_s > MAX_POLL_INTERVAL_S {
                return Err((
                    format!("repository[{i}].poll_interval_s"),
                    format!("poll at least every {MAX_POLL_INTERVAL_S} s (a week)"),
                ));
            }
            // 0 means no limit, as leaving it out does.
            if repository.max_rate_kib_s.is_some_and(|r| r > MAX_RATE_KIB_S) {
                return Err((
                    format!("repository[{i}].max_rate_kib_s"),
                    format!("at most {MAX_RATE_KIB_S} KiB/s (leave it out, or 0, for no limit)"),
                ));
            }
        }
        unique_names("authority", self.authorities.iter().map(|a| a.name.as_str()))?;
        unique_names("owner", self.owners.iter().map(|o| o.name.as_str()))?;
        unique_names("group", self.groups.iter().map(|g| g.name.as_str()))?;
        for (i, authority) in self.authorities.iter().enumerate() {
            if authority.keys.is_empty() {
                return Err((format!("authority[{i}].keys"), "an authority needs at least one key".into()));
            }
            if authority.threshold == 0 || authority.threshold > authority.keys.len() {
                return Err((
                    format!("authority[{i}].threshold"),
                    format!("must be between 1 and the number of keys ({})", authority.keys.len()),
                ));
            }
            for (k, key) in authority.keys.iter().enumerate() {
                let field = format!("authority[{i}].keys[{k}]");
                let nb = key
                    .not_before()
                    .map(|t| crate::suit::policy::datetime_to_system_time(t).map_err(|m| (field.clone(), m)));
                let na = key
                    .not_after()
                    .map(|t| crate::suit::policy::datetime_to_system_time(t).map_err(|m| (field.clone(), m)));
                if let (Some(nb), Some(na)) = (nb.transpose()?, na.transpose()?) {
                    if nb >= na {
                        return Err((field, "not_before must be earlier than not_after".into()));
                    }
                }
            }
        }
        let owner_names: Vec<&str> = self.owners.iter().map(|o| o.name.as_str()).collect();
        for (i, group) in self.groups.iter().enumerate() {
            let known = |name: &str| owner_names.contains(&name);
            if !known(&group.admin) {
                return Err((
                    format!("group[{i}].admin"),
                    format!("no [[owner]] is named `{}`; known owners: {}", group.admin, owner_names.join(", ")),
                ));
            }
            if let Some(occupant) = &group.occupant {
                if !known(occupant) {
                    return Err((
                        format!("group[{i}].occupant"),
                        format!("no [[owner]] is named `{occupant}`; known owners: {}", owner_names.join(", ")),
                    ));
                }
            }
            if group.policy.max_attempts == Some(0) {
                return Err((format!("group[{i}].policy.max_attempts"), "must be at least 1".into()));
            }
            if group.policy.retry_backoff_s.is_some_and(|s| !(1..=MAX_BACKOFF_S).contains(&s)) {
                return Err((
                    format!("group[{i}].policy.retry_backoff_s"),
                    format!("backoffs are 1 s to {MAX_BACKOFF_S} s (a day)"),
                ));
            }
            if let Err(e) = jiff::tz::TimeZone::get(&group.timezone) {
                return Err((
                    format!("group[{i}].timezone"),
                    format!("`{}` is not a known IANA time zone (like `Europe/Berlin`): {e}", group.timezone),
                ));
            }
        }
        let mut listed = std::collections::BTreeMap::new();
        for (i, group) in self.groups.iter().enumerate() {
            for (d, text) in group.devices.iter().enumerate() {
                let key = format!("group[{i}].devices[{d}]");
                let eui = crate::fleet::device::parse_eui64(text).map_err(|e| (key.clone(), e.to_string()))?;
                if let Some(other) = listed.insert(eui.0, group.name.as_str()) {
                    return Err((
                        key,
                        format!("device {eui} is already listed in group `{other}`; a device has one group"),
                    ));
                }
            }
        }
        for (i, owner) in self.owners.iter().enumerate() {
            owner.lease_end_at().map_err(|message| (format!("owner[{i}].lease_end"), message))?;
        }
        for (i, target) in self.coap.discover.iter().enumerate() {
            parse_discover_target(target).map_err(|m| (format!("coap.discover[{i}]"), m))?;
        }
        let mut kernel = std::collections::BTreeMap::new();
        for (i, device) in self.kernel_devices.iter().enumerate() {
            let eui = device.eui64().map_err(|e| (format!("kernel_device[{i}].eui64"), e.to_string()))?;
            if device.address.is_unspecified() || device.address.is_multicast() || device.port == 0 {
                return Err((
                    format!("kernel_device[{i}].address"),
                    "must be a device's unicast address and port".into(),
                ));
            }
            if let Some(other) = kernel.insert(eui.0, i).or_else(|| {
                let same = |k: &KernelDeviceConfig| k.socket_addr() == device.socket_addr();
                self.kernel_devices[..i].iter().position(same)
            }) {
                return Err((
                    format!("kernel_device[{i}]"),
                    format!("the same EUI-64 ({eui}) or address as kernel_device[{other}]; each device is listed once"),
                ));
            }
        }
        Ok(())
    }
}

/// Makes a relative path absolute against `base`, dropping `.` and `..` so logs show the real place.
pub(crate) fn resolve_path(path: &mut PathBuf, base: &Path) {
    use std::path::Component;
    if path.is_absolute() {
        return;
    }
    let mut resolved = base.to_path_buf();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                resolved.pop();
            }
            Component::CurDir => {}
            other => resolved.push(other),
        }
    }
    *path = resolved;
}

fn unique_names<'a>(table: &str, names: impl Iterator<Item = &'a str>) -> Result<(), (String, String)> {
    let mut seen = Vec::new();
    for (i, name) in names.enumerate() {
        if seen.contains(&name) {
            return Err((format!("{table}[{i}].name"), format!("another [[{table}]] is already named `{name}`")));
        }
        seen.push(name);
    }
    Ok(())
}

/// Deserializes TOML `text` into `T`, naming file, line, column and key on error; shared with
/// the `owners.d` files.
pub(crate) fn deserialize_located<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    let deserializer = toml::de::Deserializer::parse(text).map_err(|e| toml_error(path, text, &e, None))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let key = (key != ".").then_some(key);
        toml_error(path, text, e.inner(), key)
    })
}

fn toml_error(path: &Path, text: &str, error: &toml::de::Error, key: Option<String>) -> ConfigError {
    let position = error.span().map(|span| line_column(text, span.start));
    ConfigError::invalid(path, position, key, error.message().trim_end().to_owned())
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Finds where a validated key such as `group[1].admin` is written, for the error message.
fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let (table, field) = key.split_once('.')?;
    let (table, index) = match table.split_once('[') {
        Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()?),
        None => (table, 0),
    };
    let header = format!("[[{table}]]");
    let mut seen = 0;
    let mut inside = false;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            inside = trimmed == header && {
                seen += 1;
                seen == index + 1
            };
        } else if inside {
            let name = trimmed.split('=').next().unwrap_or("").trim();
            if name == field {
                let indent = line.len() - line.trim_start().len();
                return Some(line_column(text, offset + indent));
            }
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests;
