//! Maintenance windows and blackouts: when a group's devices may be taken down for an install.
//!
//! A group's [`Schedule`] is a set of [`Window`]s in the group's IANA time zone, minus
//! [`Blackout`]s (absolute intervals, which always win). Everything here is pure: the caller passes
//! `now`, and the answers are [`Schedule::is_open`], [`Schedule::next_open`] and
//! [`Schedule::current_close`] (or all at once, [`Schedule::state`]).
//!
//! # Window forms
//!
//! * Weekly spans: `"Mon-Fri 02:00-05:00"`, `"Sat,Sun 10:00-12:00"`, `"Sun-Mon 00:00-24:00"`. The
//!   days name the day the span *starts*; an end at or before the start means the next day
//!   (`"Fri 23:00-02:00"` runs from Friday 23:00 into Saturday 02:00).
//! * Cron windows: a five-field cron expression (see [`super::cron`]) for the start and a
//!   duration, e.g. `cron = "0 3 * * 1-5"`, `duration = "2h"`.
//!
//! Windows that touch or overlap merge into one open interval.
//!
//! # Daylight-saving rules
//!
//! Wall-clock times are turned into instants with these rules, chosen so that a window never
//! opens twice in one night and every instant whose wall clock reads inside a weekly span is open:
//!
//! 1. **A start in a spring-forward gap** (02:30 in Europe/Berlin on the last Sunday of March,
//!    which no clock shows) starts at the first instant after the gap: 03:00 CEST. The same goes
//!    for a weekly span's *end*: `01:00-02:30` closes at 03:00 CEST, one real hour after it opened.
//!    A span lying wholly inside the gap (`02:10-02:50`) does not happen that night.
//! 2. **A start in a fall-back fold** (02:30 happens twice in Europe/Berlin on the last Sunday of
//!    October) opens at the *first* occurrence, so the window opens once.
//! 3. **A weekly span's end in a fold** closes at the end time's *later* occurrence: the span
//!    keeps its wall-clock end, and `01:00-02:30` lasts 2½ real hours that night.
//! 4. **A cron window keeps its duration** in elapsed time: `30 2 * * *` for `2h` opens at 03:00
//!    CEST on the spring-forward night (rule 1) and closes at 05:00 CEST; on the fall-back night it
//!    opens at the first 02:30 (CEST) and closes two real hours later, at 03:30 CET. A cron
//!    expression matching several minutes inside a gap (`*/10 2 * * *`) opens once, at the gap's
//!    end. Like cron itself, it fires once per wall-clock minute, so in the repeated hour of a
//!    fall-back night it only is open if a window opened in the first pass lasts into it.
//!
//! These hold for any zone and shift size (Australia/Lord_Howe moves by 30 minutes), because they
//! are expressed through the zone's own transitions rather than a fixed hour.
//!
//! # Horizon
//!
//! [`Schedule::state`] looks about a year ahead for a close ([`CLOSE_HORIZON_DAYS`]) and nine
//! years ahead for an opening ([`OPEN_HORIZON_DAYS`], so a `29 2` cron window is found); past
//! those it answers "no close known" or "never opens".

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

use super::cron::{CronError, CronExpr};

/// How far [`Schedule::state`] looks for the end of an open stretch before it says "no close known".
pub const CLOSE_HORIZON_DAYS: i64 = 400;
/// How far [`Schedule::state`] looks for the next opening before it says "never".
pub const OPEN_HORIZON_DAYS: i64 = 9 * 366;
/// Longest cron window; keeps the look-back of [`Schedule`] bounded.
pub const MAX_CRON_DURATION: SignedDuration = SignedDuration::from_hours(7 * 24);
/// Days looked back for occurrences that may still be running: a cron window lasts at most 7 days,
/// a weekly span at most 25 hours.
const LOOKBACK_DAYS: i64 = 9;

const MINUTES_PER_DAY: u16 = 24 * 60;
/// Minutes in a nominal week, the unit of the admin's limit checks.
pub const MINUTES_PER_WEEK: u32 = 7 * 24 * 60;

/// Why a window, duration or blackout was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("`{0}` is not a weekly span; write days and times like `Mon-Fri 02:00-05:00` or `Sat,Sun 10:00-12:00`")]
    SpanFormat(String),
    #[error("`{0}` is not a day; use Mon, Tue, Wed, Thu, Fri, Sat, Sun, ranges like Mon-Fri, or lists like Sat,Sun")]
    Day(String),
    #[error("`{0}` is not a time of day; use HH:MM from 00:00 to 24:00")]
    Time(String),
    #[error("`{0}` starts and ends at the same time; use 00:00-24:00 for a whole day")]
    EmptySpan(String),
    #[error(transparent)]
    Cron(#[from] CronError),
    #[error("`{0}` is not a duration; write it like `2h`, `90m`, `1h30m` or `14d`")]
    Duration(String),
    #[error("a cron window's duration must be more than 0 and at most 7 days, not {0}")]
    CronDuration(String),
    #[error("blackout ends ({end}) before or when it starts ({start})")]
    BlackoutOrder { start: Timestamp, end: Timestamp },
}

/// Days of the week as a bit set, Monday = bit 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Days(u8);

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Days {
    pub const ALL: Days = Days(0x7f);

    pub fn contains(self, weekday: Weekday) -> bool {
        self.0 & (1 << weekday.to_monday_zero_offset()) != 0
    }

    fn contains_index(self, monday_zero: usize) -> bool {
        self.0 & (1 << monday_zero) != 0
    }

    fn day_index(name: &str) -> Option<u8> {
        // Accept "Mon", "monday", "MON": three letters are enough to tell days apart.
        let lower = name.to_ascii_lowercase();
        let prefix = lower.get(..3)?;
        let index = DAY_NAMES.iter().position(|d| *d == prefix)?;
        let full = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"][index];
        (lower.len() == 3 || lower == full).then_some(index as u8)
    }
}

impl FromStr for Days {
    type Err = WindowError;

    /// `Mon-Fri`, `Sat,Sun`, `Fri-Mon` (wraps over the weekend), `Mon-Fri,Sun`.
    fn from_str(text: &str) -> Result<Days, WindowError> {
        let mut bits = 0u8;
        for part in text.split(',') {
            let bad = || WindowError::Day(part.to_owned());
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (Days::day_index(a).ok_or_else(bad)?, Days::day_index(b).ok_or_else(bad)?);
                    let mut d = a;
                    loop {
                        bits |= 1 << d;
                        if d == b {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => bits |= 1 << Days::day_index(part).ok_or_else(bad)?,
            }
        }
        Ok(Days(bits))
    }
}

/// A weekly span such as `Mon-Fri 02:00-05:00`; displays as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WeeklySpan {
    text: String,
    days: Days,
    /// Minutes after midnight, 0..1440.
    start: u16,
    /// Minutes after midnight, 1..=1440; at or before `start` means the next day.
    end: u16,
}

fn parse_clock(text: &str) -> Result<u16, WindowError> {
    let bad = || WindowError::Time(text.to_owned());
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl FromStr for WeeklySpan {
    type Err = WindowError;

    fn from_str(text: &str) -> Result<WeeklySpan, WindowError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let [days, times] = words[..] else {
            return Err(WindowError::SpanFormat(text.to_owned()));
        };
        let days: Days = days.parse()?;
        let (start, end) = times.split_once('-').ok_or_else(|| WindowError::SpanFormat(text.to_owned()))?;
        let (start, end) = (parse_clock(start)?, parse_clock(end)?);
        if start == MINUTES_PER_DAY {
            return Err(WindowError::Time("24:00".into()));
        }
        if start == end || (start == 0 && end == 0) {
            return Err(WindowError::EmptySpan(text.to_owned()));
        }
        // 00:00 as an end means "midnight at the end of the day".
        let end = if end == 0 { MINUTES_PER_DAY } else { end };
        Ok(WeeklySpan { text: words.join(" "), days, start, end })
    }
}

impl TryFrom<String> for WeeklySpan {
    type Error = WindowError;
    fn try_from(text: String) -> Result<Self, WindowError> {
        text.parse()
    }
}

impl From<WeeklySpan> for String {
    fn from(span: WeeklySpan) -> String {
        span.text
    }
}

impl fmt::Display for WeeklySpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl WeeklySpan {
    /// Length in minutes on a night without a clock change.
    pub fn nominal_minutes(&self) -> u32 {
        if self.end > self.start {
            u32::from(self.end - self.start)
        } else {
            u32::from(MINUTES_PER_DAY - self.start + self.end)
        }
    }

    fn add_occurrences(&self, tz: &TimeZone, date: Date, out: &mut Vec<Interval>) {
        if !self.days.contains(date.weekday()) {
            return;
        }
        let end_date = if self.end > self.start { date } else { date.tomorrow().unwrap_or(date) };
        let (Some(start), Some(end)) = (civil(date, self.start), civil(end_date, self.end)) else { return };
        if let (Some(start), Some(end)) = (resolve(tz, start, Fold::Earlier), resolve(tz, end, Fold::Later)) {
            // Empty when the whole span lies in a spring-forward gap (rule 1).
            if start < end {
                out.push(Interval { start, end });
            }
        }
    }
}

/// The civil date-time `minutes` after midnight of `date` (1440 is the next midnight).
fn civil(date: Date, minutes: u16) -> Option<DateTime> {
    if minutes >= MINUTES_PER_DAY {
        return Some(date.tomorrow().ok()?.at(0, 0, 0, 0));
    }
    Some(date.at((minutes / 60) as i8, (minutes % 60) as i8, 0, 0))
}

/// Which instant a wall-clock time that happens twice stands for.
#[derive(Debug, Clone, Copy)]
enum Fold {
    Earlier,
    Later,
}

/// A wall-clock time as an instant, by the module's DST rules.
fn resolve(tz: &TimeZone, dt: DateTime, fold: Fold) -> Option<Timestamp> {
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
        AmbiguousOffset::Gap { after, .. } => {
            // Read with the later offset the time falls before the jump; the jump itself is the
            // first instant after the gap.
            let before_jump = after.to_timestamp(dt).ok()?;
            tz.following(before_jump).next().map(|t| t.timestamp())
        }
        AmbiguousOffset::Fold { before, after } => match fold {
            Fold::Earlier => before.to_timestamp(dt).ok(),
            Fold::Later => after.to_timestamp(dt).ok(),
        },
    }
}

/// A length of time written like `2h`, `90m`, `1h30m` or `14d` (a day is 24 hours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Length(SignedDuration);

impl Length {
    pub const fn from_minutes(minutes: i64) -> Length {
        Length(SignedDuration::from_mins(minutes))
    }

    pub fn duration(self) -> SignedDuration {
        self.0
    }

    /// Whole minutes, rounded up.
    pub fn minutes_ceil(self) -> i64 {
        let secs = self.0.as_secs();
        secs / 60 + i64::from(secs % 60 > 0)
    }
}

impl FromStr for Length {
    type Err = WindowError;

    fn from_str(text: &str) -> Result<Length, WindowError> {
        let bad = || WindowError::Duration(text.to_owned());
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.is_empty() {
            return Err(bad());
        }
        let mut secs: i64 = 0;
        let mut number = String::new();
        for c in compact.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let unit = match c {
                'd' => 86_400,
                'h' => 3_600,
                'm' => 60,
                's' => 1,
                _ => return Err(bad()),
            };
            let n: i64 = number.parse().map_err(|_| bad())?;
            secs = n.checked_mul(unit).and_then(|s| s.checked_add(secs)).ok_or_else(bad)?;
            number.clear();
        }
        if !number.is_empty() {
            return Err(bad());
        }
        Ok(Length(SignedDuration::from_secs(secs)))
    }
}

impl TryFrom<String> for Length {
    type Error = WindowError;
    fn try_from(text: String) -> Result<Self, WindowError> {
        text.parse()
    }
}

impl From<Length> for String {
    fn from(length: Length) -> String {
        length.to_string()
    }
}

impl fmt::Display for Length {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        if secs == 0 {
            return f.write_str("0m");
        }
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        Ok(())
    }
}

/// A window that opens when a cron expression matches and stays open for a duration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CronWindowText", into = "CronWindowText")]
pub struct CronWindow {
    pub expr: CronExpr,
    pub duration: Length,
}

/// The TOML shape of a cron window: `{ cron = "0 3 * * 1-5", duration = "2h" }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CronWindowText {
    cron: String,
    duration: Length,
}

impl TryFrom<CronWindowText> for CronWindow {
    type Error = WindowError;
    fn try_from(text: CronWindowText) -> Result<Self, WindowError> {
        CronWindow::new(text.cron.parse()?, text.duration)
    }
}

impl From<CronWindow> for CronWindowText {
    fn from(window: CronWindow) -> Self {
        CronWindowText { cron: window.expr.to_string(), duration: window.duration }
    }
}

impl CronWindow {
    pub fn new(expr: CronExpr, duration: Length) -> Result<CronWindow, WindowError> {
        if duration.0 <= SignedDuration::ZERO || duration.0 > MAX_CRON_DURATION {
            return Err(WindowError::CronDuration(duration.to_string()));
        }
        Ok(CronWindow { expr, duration })
    }

    fn add_occurrences(&self, tz: &TimeZone, date: Date, out: &mut Vec<Interval>) {
        if !self.expr.matches_date(date) {
            return;
        }
        // Starts come in order, so overlapping ones merge here: `* * * * *` yields one interval
        // a day instead of 1440 to sort.
        let mut running: Option<Interval> = None;
        for (hour, minute) in self.expr.times() {
            let Some(start) = resolve(tz, date.at(hour as i8, minute as i8, 0, 0), Fold::Earlier) else { continue };
            let Ok(end) = start.checked_add(self.duration.0) else { continue };
            match &mut running {
                Some(iv) if start <= iv.end => iv.end = iv.end.max(end),
                _ => out.extend(running.replace(Interval { start, end })),
            }
        }
        out.extend(running);
    }
}

/// A maintenance window: a weekly span or a cron window.
///
/// In TOML a weekly span is a string and a cron window an inline table, so one array holds both:
/// `windows = ["Mon-Fri 02:00-05:00", { cron = "0 3 * * 6", duration = "2h" }]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Window {
    Weekly(WeeklySpan),
    Cron(CronWindow),
}

// By hand rather than `untagged`, so a bad span or cron field gets its own message.
impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Window, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Window;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a weekly span like \"Mon-Fri 02:00-05:00\" or { cron = \"0 3 * * 1-5\", duration = \"2h\" }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Window, E> {
                text.parse().map(Window::Weekly).map_err(E::custom)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Window, A::Error> {
                let text = CronWindowText::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                CronWindow::try_from(text).map(Window::Cron).map_err(serde::de::Error::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Weekly(span) => span.fmt(f),
            Window::Cron(window) => write!(f, "cron `{}` for {}", window.expr, window.duration),
        }
    }
}

impl Window {
    /// Every day, all day.
    pub fn always() -> Window {
        Window::Weekly(WeeklySpan { text: "Mon-Sun 00:00-24:00".into(), days: Days::ALL, start: 0, end: 1440 })
    }

    fn add_occurrences(&self, tz: &TimeZone, date: Date, out: &mut Vec<Interval>) {
        match self {
            Window::Weekly(span) => span.add_occurrences(tz, date, out),
            Window::Cron(window) => window.add_occurrences(tz, date, out),
        }
    }

    /// The minutes of a nominal week (Monday 00:00 = 0) this window may cover in *some* week.
    pub fn possible_minutes(&self) -> WeekMinutes {
        let mut minutes = WeekMinutes::default();
        match self {
            Window::Weekly(span) => {
                for day in (0..7).filter(|&d| span.days.contains_index(d)) {
                    minutes.add(day as u32 * 1440 + u32::from(span.start), span.nominal_minutes());
                }
            }
            Window::Cron(window) => minutes.add_cron(window, window.expr.possible_weekdays()),
        }
        minutes
    }

    /// The minutes of a nominal week this window covers in *every* week.
    pub fn weekly_minutes(&self) -> WeekMinutes {
        match self {
            Window::Weekly(_) => self.possible_minutes(),
            Window::Cron(window) => {
                let mut minutes = WeekMinutes::default();
                minutes.add_cron(window, window.expr.weekly_weekdays());
                minutes
            }
        }
    }
}

/// A set of minutes of a nominal week (no clock changes), for the admin's limit checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeekMinutes(Vec<u64>);

impl Default for WeekMinutes {
    fn default() -> Self {
        WeekMinutes(vec![0; MINUTES_PER_WEEK.div_ceil(64) as usize])
    }
}

impl WeekMinutes {
    /// Adds `len` minutes from `start`, wrapping from Sunday night into Monday.
    pub fn add(&mut self, start: u32, len: u32) {
        let start = start % MINUTES_PER_WEEK;
        let end = start + len.min(MINUTES_PER_WEEK);
        if end <= MINUTES_PER_WEEK {
            self.set(start, end);
        } else {
            self.set(start, MINUTES_PER_WEEK);
            self.set(0, end - MINUTES_PER_WEEK);
        }
    }

    /// Sets minutes `from..to` a word at a time: `* * * * *` for 7 days must stay cheap.
    fn set(&mut self, from: u32, to: u32) {
        let mut m = from;
        while m < to {
            let bit = m % 64;
            let n = (64 - bit).min(to - m);
            let mask = if n == 64 { u64::MAX } else { ((1u64 << n) - 1) << bit };
            self.0[(m / 64) as usize] |= mask;
            m += n;
        }
    }

    fn add_cron(&mut self, window: &CronWindow, weekdays: [bool; 7]) {
        let len = u32::try_from(window.duration.minutes_ceil()).unwrap_or(MINUTES_PER_WEEK);
        for day in (0..7u32).filter(|&d| weekdays[d as usize]) {
            for (hour, minute) in window.expr.times() {
                self.add(day * 1440 + u32::from(hour) * 60 + u32::from(minute), len);
            }
        }
    }

    /// Whether minute `m` of the week (Monday 00:00 = 0) is in the set.
    pub fn contains(&self, m: u32) -> bool {
        m < MINUTES_PER_WEEK && self.0[(m / 64) as usize] & (1 << (m % 64)) != 0
    }

    pub fn union(&mut self, other: &WeekMinutes) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }

    pub fn count(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    /// The first minute in `self` that is not in `other`, as (weekday, minute of day).
    pub fn first_outside(&self, other: &WeekMinutes) -> Option<(Weekday, u16)> {
        let m = (0..MINUTES_PER_WEEK).find(|&m| self.contains(m) && !other.contains(m))?;
        let weekday = Weekday::Monday.wrapping_add((m / 1440) as i8);
        Some((weekday, (m % 1440) as u16))
    }
}

/// A half-open interval of time, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Interval {
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }
}

/// A time when no install may happen, whatever the windows say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blackout(Interval);

impl Blackout {
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Blackout, WindowError> {
        if end <= start {
            return Err(WindowError::BlackoutOrder { start, end });
        }
        Ok(Blackout(Interval { start, end }))
    }

    pub fn interval(&self) -> Interval {
        self.0
    }
}

/// Whether a schedule is open at an instant, and when that changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowState {
    /// Open; `closes` is `None` when it stays open past [`CLOSE_HORIZON_DAYS`].
    Open { closes: Option<Timestamp> },
    /// Closed; `opens` is `None` when it does not open within [`OPEN_HORIZON_DAYS`].
    Closed { opens: Option<Timestamp> },
}

/// A group's windows in its time zone, minus blackouts.
#[derive(Debug, Clone)]
pub struct Schedule {
    tz: TimeZone,
    windows: Vec<Window>,
    /// Sorted and merged, so subtraction is a single pass.
    blackouts: Vec<Interval>,
}

impl Schedule {
    pub fn new(tz: TimeZone, windows: Vec<Window>, blackouts: impl IntoIterator<Item = Blackout>) -> Schedule {
        let mut blackouts: Vec<Interval> = blackouts.into_iter().map(|b| b.0).collect();
        blackouts.sort();
        Schedule { tz, windows, blackouts: merge(blackouts) }
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// Whether an install may happen at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        // Occurrences starting after tomorrow start after `now`, so two days ahead suffice.
        let today = self.tz.to_datetime(now).date();
        self.intervals_for_dates(today.saturating_sub(LOOKBACK_DAYS.days()), today.saturating_add(1.days()))
            .iter()
            .any(|iv| iv.contains(now))
    }

    /// The first open instant at or after `now` (`now` itself when open).
    pub fn next_open(&self, now: Timestamp) -> Option<Timestamp> {
        match self.state(now) {
            WindowState::Open { .. } => Some(now),
            WindowState::Closed { opens } => opens,
        }
    }

    /// When the open stretch containing `now` ends; `None` when closed at `now` (or open past the
    /// close horizon, which [`Schedule::state`] tells apart).
    pub fn current_close(&self, now: Timestamp) -> Option<Timestamp> {
        match self.state(now) {
            WindowState::Open { closes } => closes,
            WindowState::Closed { .. } => None,
        }
    }

    /// Open or closed at `now`, and the next change.
    pub fn state(&self, now: Timestamp) -> WindowState {
        let today = self.tz.to_datetime(now).date();
        let first = today.saturating_sub(LOOKBACK_DAYS.days());
        let mut ahead = 16;
        loop {
            let last = today.saturating_add(ahead.days());
            // No occurrence from a later date starts before this, so everything before it is final.
            let frontier = civil(last, MINUTES_PER_DAY)
                .and_then(|midnight| resolve(&self.tz, midnight, Fold::Earlier))
                .unwrap_or(Timestamp::MAX);
            let intervals = self.intervals_for_dates(first, last);
            if let Some(open) = intervals.iter().find(|iv| iv.contains(now)) {
                if open.end < frontier {
                    return WindowState::Open { closes: Some(open.end) };
                }
                if ahead >= CLOSE_HORIZON_DAYS {
                    return WindowState::Open { closes: None };
                }
            } else {
                match intervals.iter().find(|iv| iv.start > now) {
                    Some(next) if next.start < frontier => return WindowState::Closed { opens: Some(next.start) },
                    _ if ahead >= OPEN_HORIZON_DAYS => return WindowState::Closed { opens: None },
                    _ => {}
                }
            }
            ahead *= 2;
        }
    }

    /// The open intervals overlapping `[from, to)`, clipped to it.
    pub fn open_intervals(&self, from: Timestamp, to: Timestamp) -> Vec<Interval> {
        let first = self.tz.to_datetime(from).date().saturating_sub(LOOKBACK_DAYS.days());
        let last = self.tz.to_datetime(to).date();
        self.intervals_for_dates(first, last)
            .into_iter()
            .filter(|iv| iv.end > from && iv.start < to)
            .map(|iv| Interval { start: iv.start.max(from), end: iv.end.min(to) })
            .collect()
    }

    /// Merged open intervals of all occurrences starting on `first..=last`, minus blackouts.
    fn intervals_for_dates(&self, first: Date, last: Date) -> Vec<Interval> {
        let mut occurrences = Vec::new();
        let mut date = first;
        while date <= last {
            for window in &self.windows {
                window.add_occurrences(&self.tz, date, &mut occurrences);
            }
            match date.tomorrow() {
                Ok(next) => date = next,
                Err(_) => break,
            }
        }
        occurrences.sort();
        subtract(merge(occurrences), &self.blackouts)
    }
}

/// Merges sorted intervals that overlap or touch.
fn merge(sorted: Vec<Interval>) -> Vec<Interval> {
    let mut merged: Vec<Interval> = Vec::with_capacity(sorted.len());
    for iv in sorted {
        match merged.last_mut() {
            Some(last) if iv.start <= last.end => last.end = last.end.max(iv.end),
            _ => merged.push(iv),
        }
    }
    merged
}

/// `open` minus `holes`; both sorted and merged, so one pass over each suffices (an owner may
/// list hundreds of blackouts, and the deferral check walks years of windows).
fn subtract(open: Vec<Interval>, holes: &[Interval]) -> Vec<Interval> {
    let mut out = Vec::with_capacity(open.len());
    // Holes ending at or before an interval's start end before every later interval's too.
    let mut first = 0;
    for iv in open {
        while holes.get(first).is_some_and(|h| h.end <= iv.start) {
            first += 1;
        }
        let mut start = iv.start;
        for hole in holes[first..].iter().take_while(|h| h.start < iv.end) {
            if hole.start > start {
                out.push(Interval { start, end: hole.start });
            }
            start = start.max(hole.end);
        }
        if start < iv.end {
            out.push(Interval { start, end: iv.end });
        }
    }
    out
}

#[cfg(test)]
#[path = "window_tests.rs"]
mod tests;
