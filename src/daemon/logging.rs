//! Logging for ferryd: readable on a terminal, and journald-friendly under systemd (no
//! timestamps of our own, since the journal adds them; a `<N>` syslog priority prefix so
//! `journalctl -p warning` works).

use std::os::unix::fs::MetadataExt;

use tracing::{Level, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::LogLevel;

/// Changes the level on SIGHUP when `RUST_LOG` does not pin it.
pub struct LogHandle {
    filter: Option<reload::Handle<EnvFilter, Registry>>,
}

impl LogHandle {
    pub fn set_level(&self, level: LogLevel) {
        if let Some(handle) = &self.filter {
            if let Err(e) = handle.reload(EnvFilter::new(level.as_str())) {
                tracing::warn!(error = %e, "cannot change the log level");
            }
        }
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over the configured level.
pub fn init(level: LogLevel) -> LogHandle {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let from_env = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let (filter, handle) = reload::Layer::new(match &from_env {
        Some(directives) => EnvFilter::new(directives),
        None => EnvFilter::new(level.as_str()),
    });
    let registry = tracing_subscriber::registry().with(filter);
    let result = if stderr_is_journal() {
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .event_format(JournalFormat(format::format().without_time().with_level(false)));
        registry.with(layer).try_init()
    } else {
        use std::io::IsTerminal;
        let layer =
            tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
        registry.with(layer).try_init()
    };
    // A test harness may have installed a subscriber already; keep that one.
    let filter = (result.is_ok() && from_env.is_none()).then_some(handle);
    LogHandle { filter }
}

/// systemd sets `JOURNAL_STREAM=dev:ino` for the stream it connected to stdout/stderr; it only
/// counts if stderr still is that stream.
fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = stream.split_once(':') else { return false };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else { return false };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

struct JournalFormat(format::Format<format::Full, ()>);

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}
