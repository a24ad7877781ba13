//! systemd's notify protocol (`Type=notify`): READY, STATUS, WATCHDOG, STOPPING. Every call is
//! a no-op when ferryd does not run under systemd (`NOTIFY_SOCKET` unset).

use std::time::Duration;

use sd_notify::NotifyState;

pub struct Notifier {
    watchdog: Option<Duration>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let mut usec = 0;
        let watchdog = sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec));
        Notifier { watchdog }
    }

    /// How often to ping: half the unit's `WatchdogSec=`, as sd_watchdog_enabled(3) advises.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|timeout| timeout / 2)
    }

    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    pub fn watchdog(&self) {
        if self.watchdog.is_some() {
            self.send(&[NotifyState::Watchdog]);
        }
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(false, states) {
            tracing::debug!(error = %e, "cannot notify systemd");
        }
    }
}
