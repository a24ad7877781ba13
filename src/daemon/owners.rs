//! The daemon's view of `owners.d`: re-read at start, on SIGHUP and on every heartbeat (tenants
//! cannot signal ferryd, so a saved file takes effect within one heartbeat). A rejected file is
//! logged once per distinct reason and the owner's last good settings stay in force.

use std::sync::Mutex;

use prometheus::{IntGaugeVec, Opts, Registry};

use crate::config::Config;
use crate::fleet::owners::{load_owner_dir, EffectiveSettings};

pub(super) struct OwnersRoom {
    state: Mutex<State>,
    files: IntGaugeVec,
}

#[derive(Default)]
struct State {
    effective: EffectiveSettings,
    /// The last rejections, as logged, so a file is not complained about every heartbeat.
    rejections: Vec<String>,
}

impl OwnersRoom {
    pub(super) fn new(registry: &Registry) -> prometheus::Result<OwnersRoom> {
        let files = IntGaugeVec::new(
            Opts::new("ferry_owner_files", "Owner files in owners.d, by whether their settings are in force."),
            &["state"],
        )?;
        registry.register(Box::new(files.clone()))?;
        Ok(OwnersRoom { state: Mutex::new(State::default()), files })
    }

    /// Reads the folder again against `config`.
    pub(super) fn reload(&self, config: &Config) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (effective, rejections) =
            load_owner_dir(&config.owner_files.dir, config, jiff::Timestamp::now(), &state.effective);
        let messages: Vec<String> = rejections.iter().map(ToString::to_string).collect();
        for message in messages.iter().filter(|m| !state.rejections.contains(m)) {
            tracing::warn!("owner file refused: {message}");
        }
        for (owner, settings) in &effective.owners {
            if state.effective.owners.get(owner) != Some(settings) {
                tracing::info!(owner, file = %settings.file.display(), "owner settings in force");
            }
        }
        self.files.with_label_values(&["in_force"]).set(effective.owners.len() as i64);
        self.files.with_label_values(&["rejected"]).set(messages.len() as i64);
        *state = State { effective, rejections: messages };
    }

    /// The settings in force, for the scheduler.
    pub(super) fn effective(&self) -> EffectiveSettings {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).effective.clone()
    }
}
