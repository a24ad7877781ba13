//! `[radio] url`: how ferryd reaches its radio co-processor, spelled as otbr-agent spells it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The posix host's default UART speed in OpenThread, and ferry's.
pub const DEFAULT_BAUDRATE: u32 = 460_800;

/// A parsed radio URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RadioUrl {
    /// `spinel+hdlc+uart:///dev/ttyACM0?uart-baudrate=460800&uart-flow-control`
    Uart { device: PathBuf, baudrate: u32, flow_control: bool },
    /// `spinel+hdlc+forkpty:///usr/bin/ot-rcp?arg=1`: spawn an RCP program on a pty.
    Forkpty { program: PathBuf, args: Vec<String> },
    /// `sim:home.toml`: the simulated PAN described by a scenario file, inside ferryd.
    Sim { scenario: PathBuf },
}

const ALLOWED: &str = "spinel+hdlc+uart:///dev/ttyACM0?uart-baudrate=460800, \
                       spinel+hdlc+forkpty:///path/to/rcp?arg=..., or sim:SCENARIO.toml";

impl RadioUrl {
    pub(super) fn resolve_paths(&mut self, base: &Path) {
        let path = match self {
            RadioUrl::Uart { device, .. } => device,
            RadioUrl::Forkpty { program, .. } => program,
            RadioUrl::Sim { scenario } => scenario,
        };
        super::resolve_path(path, base);
    }
}

impl std::str::FromStr for RadioUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(scenario) = s.strip_prefix("sim:") {
            if scenario.is_empty() {
                return Err("`sim:` needs a scenario file, e.g. sim:sim/home.toml".into());
            }
            return Ok(RadioUrl::Sim { scenario: PathBuf::from(scenario) });
        }
        let url = url::Url::parse(s).map_err(|e| format!("`{s}` is not a radio URL ({e}); use {ALLOWED}"))?;
        let path = PathBuf::from(url.path());
        if url.path().is_empty() || url.path() == "/" {
            return Err(format!("`{s}` names no device or program path; use {ALLOWED}"));
        }
        match url.scheme() {
            "spinel+hdlc+uart" => {
                let mut baudrate = DEFAULT_BAUDRATE;
                let mut flow_control = false;
                for (key, value) in url.query_pairs() {
                    match &*key {
                        "uart-baudrate" => {
                            baudrate = value
                                .parse()
                                .ok()
                                .filter(|b| *b > 0)
                                .ok_or_else(|| format!("uart-baudrate `{value}` is not a positive number"))?;
                        }
                        "uart-flow-control" => flow_control = true,
                        other => {
                            return Err(format!(
                                "unknown parameter `{other}`; allowed: uart-baudrate=N, uart-flow-control"
                            ))
                        }
                    }
                }
                Ok(RadioUrl::Uart { device: path, baudrate, flow_control })
            }
            "spinel+hdlc+forkpty" => {
                let mut args = Vec::new();
                for (key, value) in url.query_pairs() {
                    match &*key {
                        "arg" => args.push(value.into_owned()),
                        other => return Err(format!("unknown parameter `{other}`; allowed: arg=VALUE (repeatable)")),
                    }
                }
                Ok(RadioUrl::Forkpty { program: path, args })
            }
            other => Err(format!("unknown radio scheme `{other}`; use {ALLOWED}")),
        }
    }
}

impl TryFrom<String> for RadioUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<RadioUrl> for String {
    fn from(url: RadioUrl) -> String {
        url.to_string()
    }
}

impl fmt::Display for RadioUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RadioUrl::Uart { device, baudrate, flow_control } => {
                write!(f, "spinel+hdlc+uart://{}?uart-baudrate={baudrate}", device.display())?;
                if *flow_control {
                    write!(f, "&uart-flow-control")?;
                }
                Ok(())
            }
            RadioUrl::Forkpty { program, args } => {
                let mut query = url::form_urlencoded::Serializer::new(String::new());
                for arg in args {
                    query.append_pair("arg", arg);
                }
                let query = query.finish();
                write!(f, "spinel+hdlc+forkpty://{}", program.display())?;
                if !query.is_empty() {
                    write!(f, "?{query}")?;
                }
                Ok(())
            }
            RadioUrl::Sim { scenario } => write!(f, "sim:{}", scenario.display()),
        }
    }
}
