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
    #[serde(default, rename = "repository", skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<RepositoryConfig>,
    #[serde(default, rename = "authority", skip_serializing_if = "Vec::is_empty")]
    pub authorities: Vec<AuthorityConfig>,
    #[serde(default, rename = "owner", skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<OwnerConfig>,
    #[serde(default, rename = "group", skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupConfig>,
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
    /// Public keys: raw hex, base64, or PEM file paths.
    pub keys: Vec<String>,
    /// How many of `keys` must have signed.
    #[serde(default = "AuthorityConfig::default_threshold")]
    pub threshold: usize,
    #[serde(default)]
    pub scope: ScopeConfig,
}

impl AuthorityConfig {
    fn default_threshold() -> usize {
        1
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
    /// Longest the occupant's windows and blackouts together may keep the group closed.
    #[serde(default = "GroupPolicy::default_max_deferral")]
    pub max_deferral: Length,
}

impl GroupPolicy {
    fn default_min_weekly_open() -> Length {
        Length::from_minutes(2 * 60)
    }
    fn default_max_deferral() -> Length {
        Length::from_minutes(14 * 24 * 60)
    }
}

impl Default for GroupPolicy {
    fn default() -> Self {
        GroupPolicy {
            windows: Vec::new(),
            occupant_hours: Vec::new(),
            min_weekly_open: Self::default_min_weekly_open(),
            max_deferral: Self::default_max_deferral(),
        }
    }
}

impl GroupConfig {
    fn default_timezone() -> String {
        "UTC".to_owned()
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
        self.radio.url.resolve_paths(base);
        for repository in &mut self.repositories {
            if let RepositoryUrl::Dir(dir) = &mut repository.url {
                resolve_path(dir, base);
            }
        }
    }

    /// Rules that span several keys; returns the key at fault and what is wrong.
    fn validate(&self) -> Result<(), (String, String)> {
        unique_names("repository", self.repositories.iter().map(|r| r.name.as_str()))?;
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
            if let Err(e) = jiff::tz::TimeZone::get(&group.timezone) {
                return Err((
                    format!("group[{i}].timezone"),
                    format!("`{}` is not a known IANA time zone (like `Europe/Berlin`): {e}", group.timezone),
                ));
            }
        }
        for (i, owner) in self.owners.iter().enumerate() {
            owner.lease_end_at().map_err(|message| (format!("owner[{i}].lease_end"), message))?;
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
