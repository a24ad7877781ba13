//! Small value types of the configuration that check themselves while being read, so that a
//! wrong value is reported at its line by the TOML parser.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IEEE 802.15.4 channel of the 2.4 GHz O-QPSK PHY (11–26), the only PHY the nRF52840 has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Channel(u8);

impl Channel {
    pub fn new(channel: u8) -> Option<Channel> {
        (11..=26).contains(&channel).then_some(Channel(channel))
    }
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Channel {
    type Error = String;
    fn try_from(channel: u8) -> Result<Self, Self::Error> {
        Channel::new(channel).ok_or_else(|| format!("channel {channel} is not a 2.4 GHz 802.15.4 channel (11–26)"))
    }
}

impl From<Channel> for u8 {
    fn from(channel: Channel) -> u8 {
        channel.0
    }
}

/// An 802.15.4 PAN ID. `0xffff` is the broadcast PAN and cannot be ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct PanId(pub u16);

impl TryFrom<u32> for PanId {
    type Error = String;
    fn try_from(pan_id: u32) -> Result<Self, Self::Error> {
        match u16::try_from(pan_id) {
            Ok(0xffff) => Err("PAN ID 0xffff is the broadcast PAN; choose 0x0000–0xfffe".into()),
            Ok(id) => Ok(PanId(id)),
            Err(_) => Err(format!("PAN ID {pan_id:#x} does not fit 16 bits; choose 0x0000–0xfffe")),
        }
    }
}

impl From<PanId> for u32 {
    fn from(pan_id: PanId) -> u32 {
        pan_id.0.into()
    }
}

/// The /64 IPv6 prefix of the PAN. 6LoWPAN derives interface identifiers from MAC addresses,
/// so only /64 is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv6Prefix {
    network: Ipv6Addr,
}

impl Ipv6Prefix {
    pub fn network(&self) -> Ipv6Addr {
        self.network
    }
}

impl FromStr for Ipv6Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) =
            s.split_once('/').ok_or_else(|| format!("`{s}` is not a prefix; write it like fd00:1::/64"))?;
        let network: Ipv6Addr = addr.parse().map_err(|_| format!("`{addr}` is not an IPv6 address"))?;
        if len != "64" {
            return Err(format!("prefix length /{len} is not supported; 6LoWPAN needs a /64"));
        }
        if u128::from(network) & u128::from(u64::MAX) != 0 {
            return Err(format!("`{s}` has bits set after the first 64; write the network, e.g. fd00:1::/64"));
        }
        Ok(Ipv6Prefix { network })
    }
}

impl TryFrom<String> for Ipv6Prefix {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Ipv6Prefix> for String {
    fn from(prefix: Ipv6Prefix) -> String {
        prefix.to_string()
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/64", self.network)
    }
}

/// The log level used when `RUST_LOG` is not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Reads `IP:PORT` with a message that shows the expected form.
pub(super) fn socket_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::net::SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    parse_socket_addr(&text).map_err(serde::de::Error::custom)
}

/// Reads a list of `IP:PORT`.
pub(super) fn socket_addrs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<std::net::SocketAddr>, D::Error> {
    let texts = Vec::<String>::deserialize(d)?;
    texts.iter().map(|t| parse_socket_addr(t)).collect::<Result<_, _>>().map_err(serde::de::Error::custom)
}

fn parse_socket_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not an address with a port; write it like 127.0.0.1:9478 or [::1]:5683"))
}

/// Where a repository is: a local folder, or an HTTP(S) or CoAP URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RepositoryUrl {
    /// `file:///srv/updates` or a plain path (relative to the config file's folder).
    Dir(std::path::PathBuf),
    /// `http://`, `https://` or `coap://`.
    Remote(url::Url),
}

impl TryFrom<String> for RepositoryUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if !s.contains("://") {
            if s.is_empty() {
                return Err("a repository needs a folder or a URL".into());
            }
            return Ok(RepositoryUrl::Dir(s.into()));
        }
        let url = url::Url::parse(&s).map_err(|e| format!("`{s}` is not a URL ({e})"))?;
        match url.scheme() {
            "file" => url
                .to_file_path()
                .map(RepositoryUrl::Dir)
                .map_err(|_| format!("`{s}` is not a local folder; write file:///path")),
            "http" | "https" | "coap" => Ok(RepositoryUrl::Remote(url)),
            other => {
                Err(format!("unsupported repository scheme `{other}`; use a folder, file://, http(s):// or coap://"))
            }
        }
    }
}

impl From<RepositoryUrl> for String {
    fn from(url: RepositoryUrl) -> String {
        match url {
            RepositoryUrl::Dir(dir) => dir.display().to_string(),
            RepositoryUrl::Remote(url) => url.to_string(),
        }
    }
}
