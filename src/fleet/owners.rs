//! Owners' own settings: `/etc/ferry/owners.d/<owner>.toml`.
//!
//! Each owner named in `ferry.toml` may keep one file, named after them, with windows and
//! blackouts for the groups they hold:
//!
//! ```toml
//! [group.flat-3]
//! windows = ["Mon-Fri 02:00-05:00", { cron = "0 3 * * 6", duration = "2h" }]
//! blackouts = [{ start = 2026-12-24T00:00:00+01:00, end = 2026-12-27T00:00:00+01:00, reason = "family" }]
//! ```
//!
//! A file is accepted only when all of these hold, checked in this order:
//!
//! 1. its name is `<owner>.toml` for an `[[owner]]` of `ferry.toml`, and that owner's lease has not
//!    ended (after `lease_end` the file, and any settings kept from it, are ignored);
//! 2. it is a regular file (not a symlink), owned by the owner's uid or by root, and not writable
//!    by group or others (sshd's StrictModes): otherwise someone else could speak for the owner;
//! 3. it parses (unknown keys are refused, errors name file, line and key);
//! 4. every group it names exists and the owner is that group's occupant or admin;
//! 5. for an occupant, it stays within the group's `[group.policy]`: windows inside
//!    `occupant_hours`, windows adding up to `min_weekly_open` per week, and windows and blackouts
//!    never keeping the group closed longer than `max_deferral` (checked from `now` over the span of
//!    the blackouts plus five weeks; so every blackout must end within
//!    [`MAX_BLACKOUT_AHEAD_DAYS`] of `now`). The admin is not limited: they set the limits.
//!
//! A rejected file is rejected whole, with a [`Rejection`] saying why, and the owner's last good
//! settings stay in force (re-checked against the current `ferry.toml`). A deleted file withdraws
//! the owner's settings. Ownership of the folder itself is not checked: each file's owner is, so
//! who may create files there grants no rights.
//!
//! Which settings apply to a group is [`EffectiveSettings::group_schedule`]'s job.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Deserializer};

use crate::config::{self, Config, ConfigError, GroupConfig, Invalid, OwnerConfig};
use crate::schedule::{Blackout, Schedule, WeekMinutes, Window};

/// Where owners keep their files when the config does not say otherwise.
pub const DEFAULT_OWNERS_DIR: &str = "/etc/ferry/owners.d";
/// Owner files are small; a bigger one is a mistake or an attack on the daemon's memory.
pub const MAX_FILE_BYTES: u64 = 256 * 1024;
/// How far past the last blackout the deferral limit is checked.
const DEFERRAL_CHECK_TAIL: SignedDuration = SignedDuration::from_hours(35 * 24);
/// An occupant's blackouts must end within this of now: the deferral check walks every window
/// up to the last blackout, and a blackout in year 9999 would make each reload walk millennia.
pub const MAX_BLACKOUT_AHEAD_DAYS: i64 = 731;

/// One owner's file, as written.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerFile {
    /// Settings per group name.
    #[serde(default)]
    pub group: BTreeMap<String, GroupSettings>,
}

/// An owner's settings for one group.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSettings {
    /// When installs may happen; empty leaves it to the admin.
    #[serde(default)]
    pub windows: Vec<Window>,
    #[serde(default)]
    pub blackouts: Vec<BlackoutEntry>,
}

/// A blackout as written in an owner file: RFC 3339 `start` and `end`, and an optional reason.
#[derive(Debug, Clone, PartialEq)]
pub struct BlackoutEntry {
    pub blackout: Blackout,
    pub reason: Option<String>,
}

impl<'de> Deserialize<'de> for BlackoutEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            start: Instant,
            end: Instant,
            #[serde(default)]
            reason: Option<String>,
        }
        let raw = Raw::deserialize(deserializer)?;
        let blackout = Blackout::new(raw.start.0, raw.end.0).map_err(serde::de::Error::custom)?;
        Ok(BlackoutEntry { blackout, reason: raw.reason })
    }
}

/// An absolute time: a TOML offset date-time or an RFC 3339 string; the offset is required.
struct Instant(Timestamp);

impl<'de> Deserialize<'de> for Instant {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = match toml::Value::deserialize(deserializer)? {
            toml::Value::Datetime(dt) => dt.to_string(),
            toml::Value::String(text) => text,
            other => {
                return Err(serde::de::Error::custom(format!(
                    "expected a date-time with offset like 2026-12-24T00:00:00+01:00, found {}",
                    other.type_str()
                )))
            }
        };
        text.parse().map(Instant).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not a date-time with offset (like 2026-12-24T00:00:00+01:00 or ...Z): {e}"
            ))
        })
    }
}

/// The settings in force for one owner, and the file they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnerSettings {
    pub file: PathBuf,
    pub settings: OwnerFile,
}

/// Every owner's settings in force: the result of [`load_owner_dir`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EffectiveSettings {
    pub owners: BTreeMap<String, OwnerSettings>,
}

/// Why an owner file was not (or no longer) taken.
#[derive(Debug, thiserror::Error)]
pub enum RejectReason {
    #[error("no [[owner]] in ferry.toml is named `{name}`; name the file <owner>.toml after one of: {known}")]
    UnknownOwner { name: String, known: String },
    #[error("the lease of `{owner}` ended at {lease_end}; their settings are ignored")]
    LeaseEnded { owner: String, lease_end: Timestamp },
    #[error("lease_end of `{owner}` is unusable: {message}")]
    BadLeaseEnd { owner: String, message: String },
    #[error("not a regular file (symlinks are refused so no one can point at another owner's file)")]
    NotRegularFile,
    #[error("cannot read: {0}")]
    Unreadable(#[source] std::io::Error),
    #[error("larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    #[error(
        "owned by uid {uid}; it must be owned by uid {expected} (owner `{owner}`) or root (chown {expected} <file>)"
    )]
    WrongFileOwner { owner: String, uid: u32, expected: u32 },
    #[error("mode {mode:04o} lets group or others write it; run chmod go-w <file>")]
    WritableByOthers { mode: u32 },
    #[error("{0}")]
    Malformed(Box<Invalid>),
    #[error("group `{group}` is not in ferry.toml")]
    UnknownGroup { group: String },
    #[error("`{owner}` is neither occupant nor admin of group `{group}` (admin `{admin}`, occupant {occupant})")]
    NotYourGroup { owner: String, group: String, admin: String, occupant: String },
    #[error("group `{group}` has time zone `{zone}`, which is unknown")]
    TimeZone { group: String, zone: String },
    #[error("group `{group}`: window `{window}` reaches {weekday:?} {hour:02}:{minute:02}, outside the admin's occupant_hours ({allowed})", hour = minute_of_day / 60, minute = minute_of_day % 60)]
    OutsideAllowedHours {
        group: String,
        window: String,
        weekday: jiff::civil::Weekday,
        minute_of_day: u16,
        allowed: String,
    },
    #[error("group `{group}`: windows add up to {have} a week; the admin asks for at least {need} so security updates can happen")]
    TooLittleOpen { group: String, have: String, need: String },
    #[error(
        "group `{group}`: windows and blackouts keep it closed from {from} {until}; the admin allows at most {max}"
    )]
    DeferralTooLong { group: String, from: Timestamp, until: Until, max: String },
    #[error(
        "group `{group}`: a blackout ends at {end}, more than {MAX_BLACKOUT_AHEAD_DAYS} days ahead; \
         add it when it is nearer"
    )]
    BlackoutTooFar { group: String, end: Timestamp },
}

/// The end of a too-long closed stretch, for [`RejectReason::DeferralTooLong`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    At(Timestamp),
    Never,
}

impl fmt::Display for Until {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Until::At(t) => write!(f, "until {t}"),
            Until::Never => f.write_str("on, never reopening"),
        }
    }
}

/// A file that was not taken, and whether the owner's previous settings stay in force.
#[derive(Debug)]
pub struct Rejection {
    pub file: PathBuf,
    pub owner: Option<String>,
    pub reason: RejectReason,
    pub kept_previous: bool,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Malformed already starts with the file name and line.
        match &self.reason {
            RejectReason::Malformed(_) => write!(f, "{}", self.reason)?,
            reason => write!(f, "{}: {reason}", self.file.display())?,
        }
        if self.kept_previous {
            f.write_str(" (the previous settings stay in force)")
        } else {
            f.write_str(" (no settings of this owner are in force)")
        }
    }
}

impl std::error::Error for Rejection {}

/// Reads every `*.toml` in `dir` and returns the settings in force and the files not taken.
///
/// `previous` is the last result: an owner whose new file is rejected keeps those settings, as
/// long as they still pass the current `config` (lease, roles, limits) at `now`. A missing folder
/// means no owner settings.
pub fn load_owner_dir(
    dir: &Path,
    config: &Config,
    now: Timestamp,
    previous: &EffectiveSettings,
) -> (EffectiveSettings, Vec<Rejection>) {
    let effective = EffectiveSettings::default();
    let mut rejections = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (effective, rejections),
        Err(e) => {
            // Cannot tell which files changed: keep everything as it was.
            let reason = RejectReason::Unreadable(e);
            rejections.push(Rejection { file: dir.to_owned(), owner: None, reason, kept_previous: true });
            return (previous.clone(), rejections);
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // Editor leftovers and hidden files are not owner files.
            !name.starts_with('.') && path.extension().is_some_and(|ext| ext == "toml")
        })
        .collect();
    files.sort();
    let mut taken = Taken { effective, rejections, config, now, previous };
    for file in files {
        taken.take(file, read_owner_file);
    }
    (taken.effective, taken.rejections)
}

/// [`load_owner_dir`] for owner files given as `(owner name, TOML text)` instead of a folder:
/// the same checks but the file's ownership and mode (step 2), as there is no file. The
/// simulated rollouts (`sim::bench::rollout`) change owners' settings this way in virtual time.
pub fn load_owner_texts<'a>(
    texts: impl IntoIterator<Item = (&'a str, &'a str)>,
    config: &Config,
    now: Timestamp,
    previous: &EffectiveSettings,
) -> (EffectiveSettings, Vec<Rejection>) {
    let mut taken = Taken { effective: EffectiveSettings::default(), rejections: Vec::new(), config, now, previous };
    for (owner, text) in texts {
        taken.take(PathBuf::from(format!("{owner}.toml")), |path, _| parse_owner_file(path, text));
    }
    (taken.effective, taken.rejections)
}

/// One pass over owner files: what is in force so far and what was refused.
struct Taken<'a> {
    effective: EffectiveSettings,
    rejections: Vec<Rejection>,
    config: &'a Config,
    now: Timestamp,
    previous: &'a EffectiveSettings,
}

impl Taken<'_> {
    /// Takes or refuses `file`, read by `read` once its owner and lease are known.
    fn take(&mut self, file: PathBuf, read: impl FnOnce(&Path, &OwnerConfig) -> Result<OwnerFile, RejectReason>) {
        let (config, now) = (self.config, self.now);
        let name = file.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_owned();
        let Some(owner) = config.owners.iter().find(|o| o.name == name) else {
            let known = config.owners.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", ");
            let reason = RejectReason::UnknownOwner { name, known };
            self.rejections.push(Rejection { file, owner: None, reason, kept_previous: false });
            return;
        };
        let outcome = lease_in_force(owner, now).and_then(|()| {
            let settings = read(&file, owner)?;
            check_settings(owner, &settings, config, now)?;
            Ok(settings)
        });
        match outcome {
            Ok(settings) => {
                self.effective.owners.insert(name, OwnerSettings { file, settings });
            }
            Err(reason) => {
                let lease_over = matches!(reason, RejectReason::LeaseEnded { .. } | RejectReason::BadLeaseEnd { .. });
                let kept = self
                    .previous
                    .owners
                    .get(&name)
                    .filter(|prev| !lease_over && check_settings(owner, &prev.settings, config, now).is_ok());
                if let Some(prev) = kept {
                    self.effective.owners.insert(name.clone(), prev.clone());
                }
                self.rejections.push(Rejection { file, owner: Some(name), reason, kept_previous: kept.is_some() });
            }
        }
    }
}

fn lease_in_force(owner: &OwnerConfig, now: Timestamp) -> Result<(), RejectReason> {
    match owner.lease_end_at() {
        Ok(Some(lease_end)) if now >= lease_end => {
            Err(RejectReason::LeaseEnded { owner: owner.name.clone(), lease_end })
        }
        Ok(_) => Ok(()),
        Err(message) => Err(RejectReason::BadLeaseEnd { owner: owner.name.clone(), message }),
    }
}

/// Opens `path` only if the owner alone (or root) can have written it, then parses it.
fn read_owner_file(path: &Path, owner: &OwnerConfig) -> Result<OwnerFile, RejectReason> {
    // No symlinks (ELOOP), and no blocking on a FIFO swapped in by someone with write access to
    // the folder; the checks below are on the opened file, so a rename in between cannot fool them.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => RejectReason::NotRegularFile,
            _ => RejectReason::Unreadable(e),
        })?;
    let meta = file.metadata().map_err(RejectReason::Unreadable)?;
    if !meta.file_type().is_file() {
        return Err(RejectReason::NotRegularFile);
    }
    if meta.uid() != owner.uid && meta.uid() != 0 {
        return Err(RejectReason::WrongFileOwner { owner: owner.name.clone(), uid: meta.uid(), expected: owner.uid });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(RejectReason::WritableByOthers { mode: meta.mode() & 0o7777 });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(RejectReason::TooLarge);
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text).map_err(RejectReason::Unreadable)?;
    parse_owner_file(path, &text)
}

/// Step 3: an owner file's text; `path` names it in errors.
fn parse_owner_file(path: &Path, text: &str) -> Result<OwnerFile, RejectReason> {
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(RejectReason::TooLarge);
    }
    config::deserialize_located(path, text).map_err(|e| match e {
        ConfigError::Invalid(invalid) => RejectReason::Malformed(invalid),
        ConfigError::Read { source, .. } => RejectReason::Unreadable(source),
    })
}

/// Roles and the admin's limits (steps 4 and 5 of the module doc).
fn check_settings(owner: &OwnerConfig, file: &OwnerFile, config: &Config, now: Timestamp) -> Result<(), RejectReason> {
    for (name, settings) in &file.group {
        let group = config
            .groups
            .iter()
            .find(|g| &g.name == name)
            .ok_or_else(|| RejectReason::UnknownGroup { group: name.clone() })?;
        if group.admin == owner.name {
            continue;
        }
        if group.occupant.as_deref() != Some(owner.name.as_str()) {
            return Err(RejectReason::NotYourGroup {
                owner: owner.name.clone(),
                group: name.clone(),
                admin: group.admin.clone(),
                occupant: group.occupant.as_ref().map_or_else(|| "none".to_owned(), |o| format!("`{o}`")),
            });
        }
        check_occupant_limits(group, settings, now)?;
    }
    Ok(())
}

fn check_occupant_limits(group: &GroupConfig, settings: &GroupSettings, now: Timestamp) -> Result<(), RejectReason> {
    let policy = &group.policy;
    if !policy.occupant_hours.is_empty() {
        let mut allowed = WeekMinutes::default();
        for span in &policy.occupant_hours {
            allowed.union(&Window::Weekly(span.clone()).possible_minutes());
        }
        for window in &settings.windows {
            if let Some((weekday, minute_of_day)) = window.possible_minutes().first_outside(&allowed) {
                let allowed = policy.occupant_hours.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ");
                return Err(RejectReason::OutsideAllowedHours {
                    group: group.name.clone(),
                    window: window.to_string(),
                    weekday,
                    minute_of_day,
                    allowed,
                });
            }
        }
    }
    if !settings.windows.is_empty() {
        let mut weekly = WeekMinutes::default();
        for window in &settings.windows {
            weekly.union(&window.weekly_minutes());
        }
        let have = crate::schedule::Length::from_minutes(i64::from(weekly.count()));
        if have < policy.min_weekly_open {
            return Err(RejectReason::TooLittleOpen {
                group: group.name.clone(),
                have: have.to_string(),
                need: policy.min_weekly_open.to_string(),
            });
        }
    }
    let horizon =
        now.saturating_add(SignedDuration::from_hours(MAX_BLACKOUT_AHEAD_DAYS * 24)).unwrap_or(Timestamp::MAX);
    if let Some(far) = settings.blackouts.iter().map(|b| b.blackout.interval().end).find(|end| *end > horizon) {
        return Err(RejectReason::BlackoutTooFar { group: group.name.clone(), end: far });
    }
    let tz = TimeZone::get(&group.timezone)
        .map_err(|_| RejectReason::TimeZone { group: group.name.clone(), zone: group.timezone.clone() })?;
    // Without windows of their own the occupant's blackouts cut into the admin's.
    let windows = if settings.windows.is_empty() { default_windows(group) } else { settings.windows.clone() };
    let schedule = Schedule::new(tz, windows, settings.blackouts.iter().map(|b| b.blackout));
    let last_blackout = settings.blackouts.iter().map(|b| b.blackout.interval().end).max().unwrap_or(now);
    let until = last_blackout.max(now).saturating_add(DEFERRAL_CHECK_TAIL).unwrap_or(Timestamp::MAX);
    let max = policy.max_deferral.duration();
    let mut closed_since = now;
    for open in schedule.open_intervals(now, until) {
        if open.start.duration_since(closed_since) > max {
            return Err(deferral(group, closed_since, Until::At(open.start)));
        }
        closed_since = open.end;
    }
    if until.duration_since(closed_since) > max {
        let reopens = schedule.next_open(closed_since).map_or(Until::Never, Until::At);
        return Err(deferral(group, closed_since, reopens));
    }
    Ok(())
}

fn deferral(group: &GroupConfig, from: Timestamp, until: Until) -> RejectReason {
    RejectReason::DeferralTooLong { group: group.name.clone(), from, until, max: group.policy.max_deferral.to_string() }
}

/// The admin's `policy.windows`, or any time when they set none.
fn default_windows(group: &GroupConfig) -> Vec<Window> {
    if group.policy.windows.is_empty() {
        vec![Window::always()]
    } else {
        group.policy.windows.clone()
    }
}

/// Why no schedule could be built for a group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupScheduleError {
    #[error("group `{0}` is not in ferry.toml")]
    UnknownGroup(String),
    #[error("group `{group}` has time zone `{zone}`, which is unknown")]
    TimeZone { group: String, zone: String },
}

impl EffectiveSettings {
    /// The schedule in force for `group` at `now`.
    ///
    /// Windows: the occupant's (while their lease lasts), else the admin's owner file's, else the
    /// admin's `policy.windows`, else any time. Blackouts: the occupant's and the admin's together.
    /// Roles and leases are checked against `config` here again, so a changed `ferry.toml` or an
    /// ended lease takes effect without reloading the owner files.
    pub fn group_schedule(&self, config: &Config, group: &str, now: Timestamp) -> Result<Schedule, GroupScheduleError> {
        let group_config = config
            .groups
            .iter()
            .find(|g| g.name == group)
            .ok_or_else(|| GroupScheduleError::UnknownGroup(group.to_owned()))?;
        let tz = TimeZone::get(&group_config.timezone).map_err(|_| GroupScheduleError::TimeZone {
            group: group.to_owned(),
            zone: group_config.timezone.clone(),
        })?;
        let settings_of = |name: &str| -> Option<&GroupSettings> {
            let owner = config.owners.iter().find(|o| o.name == name)?;
            lease_in_force(owner, now).ok()?;
            self.owners.get(name)?.settings.group.get(group)
        };
        let occupant = group_config.occupant.as_deref().and_then(settings_of);
        let admin = settings_of(&group_config.admin);
        let windows = [occupant, admin]
            .into_iter()
            .flatten()
            .map(|s| &s.windows)
            .find(|w| !w.is_empty())
            .cloned()
            .unwrap_or_else(|| default_windows(group_config));
        let blackouts = [occupant, admin].into_iter().flatten().flat_map(|s| s.blackouts.iter().map(|b| b.blackout));
        Ok(Schedule::new(tz, windows, blackouts.collect::<Vec<_>>()))
    }
}

#[cfg(test)]
#[path = "owners_tests.rs"]
mod tests;
