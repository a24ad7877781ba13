//! Five-field cron expressions (`minute hour day-of-month month day-of-week`), matched against
//! civil (wall-clock) dates and times.
//!
//! The syntax is Vixie cron's: `*`, `a`, `a-b`, `*/n`, `a-b/n`, `a/n` and comma lists of those;
//! month names `jan`..`dec` and day names `sun`..`sat` (any case); day-of-week `0` and `7` are both
//! Sunday. As in Vixie cron, when both day-of-month and day-of-week are restricted (neither starts
//! with `*`) a day matches if *either* matches.
//!
//! Only matching lives here; turning a matching civil time into an instant (and what to do on DST
//! nights) is [`super::window`]'s job.

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, Weekday};

/// Why a cron expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("a cron expression has 5 fields (minute hour day-of-month month day-of-week), `{0}` has {1}")]
    FieldCount(String, usize),
    #[error("cron {field} field `{text}`: {reason}")]
    Field { field: &'static str, text: String, reason: String },
}

/// One parsed field: the set of allowed values as a bit mask, and whether it was written as `*…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    bits: u64,
    star: bool,
}

impl Field {
    fn contains(self, value: u8) -> bool {
        value < 64 && self.bits & (1 << value) != 0
    }

    fn values(self) -> impl Iterator<Item = u8> {
        (0..64u8).filter(move |v| self.bits & (1 << v) != 0)
    }
}

struct FieldSpec {
    name: &'static str,
    min: u8,
    max: u8,
    names: &'static [&'static str],
}

const MINUTE: FieldSpec = FieldSpec { name: "minute", min: 0, max: 59, names: &[] };
const HOUR: FieldSpec = FieldSpec { name: "hour", min: 0, max: 23, names: &[] };
const DAY: FieldSpec = FieldSpec { name: "day-of-month", min: 1, max: 31, names: &[] };
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
};
// 7 is accepted as Sunday and folded onto 0 after parsing.
const WEEKDAY: FieldSpec =
    FieldSpec { name: "day-of-week", min: 0, max: 7, names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"] };

impl FieldSpec {
    fn parse(&self, text: &str) -> Result<Field, CronError> {
        let err = |reason: String| CronError::Field { field: self.name, text: text.to_owned(), reason };
        let mut bits = 0u64;
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((range, step)) => {
                    let step: u8 = step.parse().map_err(|_| err(format!("step `{step}` is not a number")))?;
                    if step == 0 {
                        return Err(err("a step of 0 never matches".into()));
                    }
                    (range, step)
                }
                None => (part, 1),
            };
            let (low, high) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                (self.value(a).map_err(&err)?, self.value(b).map_err(&err)?)
            } else {
                let a = self.value(range).map_err(&err)?;
                // `a/n` means "from a to the end, every n", as in Vixie cron.
                (a, if part.contains('/') { self.max } else { a })
            };
            if low > high {
                return Err(err(format!("range {low}-{high} runs backwards")));
            }
            let mut v = low;
            while v <= high {
                bits |= 1 << v;
                v = match v.checked_add(step) {
                    Some(next) => next,
                    None => break,
                };
            }
        }
        Ok(Field { bits, star: text.starts_with('*') })
    }

    fn value(&self, text: &str) -> Result<u8, String> {
        if let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            return Ok(i as u8 + self.min);
        }
        let value: u8 = text.parse().map_err(|_| format!("`{text}` is not a number or name"))?;
        if value < self.min || value > self.max {
            return Err(format!("{value} is outside {}-{}", self.min, self.max));
        }
        Ok(value)
    }
}

/// A parsed cron expression; displays as it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    text: String,
    minute: Field,
    hour: Field,
    day: Field,
    month: Field,
    weekday: Field,
}

impl FromStr for CronExpr {
    type Err = CronError;

    fn from_str(text: &str) -> Result<Self, CronError> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(CronError::FieldCount(text.to_owned(), fields.len()));
        };
        let mut weekday = WEEKDAY.parse(weekday)?;
        if weekday.contains(7) {
            weekday.bits = (weekday.bits & !(1 << 7)) | 1;
        }
        Ok(CronExpr {
            text: fields.join(" "),
            minute: MINUTE.parse(minute)?,
            hour: HOUR.parse(hour)?,
            day: DAY.parse(day)?,
            month: MONTH.parse(month)?,
            weekday,
        })
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn sunday_zero(weekday: Weekday) -> u8 {
    weekday.to_sunday_zero_offset() as u8
}

impl CronExpr {
    /// Whether any time on `date` can match (month, day-of-month, day-of-week).
    pub fn matches_date(&self, date: Date) -> bool {
        if !self.month.contains(date.month() as u8) {
            return false;
        }
        let by_day = self.day.contains(date.day() as u8);
        let by_weekday = self.weekday.contains(sunday_zero(date.weekday()));
        // Vixie cron: either day field written as `*…` makes the two an AND, otherwise an OR.
        if self.day.star || self.weekday.star {
            by_day && by_weekday
        } else {
            by_day || by_weekday
        }
    }

    /// The (hour, minute) pairs that match on a matching date, in order.
    pub fn times(&self) -> impl Iterator<Item = (u8, u8)> + '_ {
        self.hour.values().flat_map(move |h| self.minute.values().map(move |m| (h, m)))
    }

    /// Weekdays (Monday = 0) on which this expression may fire in some week of the year: used to
    /// check an occupant's window against the admin's allowed hours, so it errs on "maybe".
    pub fn possible_weekdays(&self) -> [bool; 7] {
        let either_day_field = !self.day.star && !self.weekday.star;
        std::array::from_fn(|monday_zero| either_day_field || self.weekday.contains(sunday_zero_of(monday_zero)))
    }

    /// Weekdays (Monday = 0) on which this expression fires in *every* week: only when neither
    /// month nor day-of-month narrows it. Used for the admin's minimum weekly window.
    pub fn weekly_weekdays(&self) -> [bool; 7] {
        let every_month = self.month.bits.count_ones() == 12;
        let either_day_field = !self.day.star && !self.weekday.star;
        let every_day_of_month = self.day.bits.count_ones() == 31;
        std::array::from_fn(|monday_zero| {
            every_month
                && (either_day_field || every_day_of_month)
                && self.weekday.contains(sunday_zero_of(monday_zero))
        })
    }
}

fn sunday_zero_of(monday_zero: usize) -> u8 {
    ((monday_zero + 1) % 7) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn cron(text: &str) -> CronExpr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn parses_lists_ranges_steps_and_names() {
        let c = cron("*/15 2-4,22 * jan-mar mon-fri");
        assert_eq!(c.minute.values().collect::<Vec<_>>(), [0, 15, 30, 45]);
        assert_eq!(c.hour.values().collect::<Vec<_>>(), [2, 3, 4, 22]);
        assert_eq!(c.month.values().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(c.weekday.values().collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert_eq!(cron("5/20 * * * *").minute.values().collect::<Vec<_>>(), [5, 25, 45]);
        assert_eq!(c.to_string(), "*/15 2-4,22 * jan-mar mon-fri");
    }

    #[test]
    fn seven_is_sunday() {
        let c = cron("0 3 * * 7");
        assert!(c.matches_date(date(2026, 11, 29))); // a Sunday
        assert!(!c.matches_date(date(2026, 11, 30)));
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_restricted() {
        let c = cron("0 3 1 * mon");
        assert!(c.matches_date(date(2026, 12, 1))); // the 1st, a Tuesday
        assert!(c.matches_date(date(2026, 11, 30))); // a Monday
        assert!(!c.matches_date(date(2026, 12, 2)));
        let only_first = cron("0 3 1 * *");
        assert!(!only_first.matches_date(date(2026, 11, 30)));
        // A field written `*/2` still counts as "*": the two day fields are ANDed.
        let odd_day_mondays = cron("0 3 */2 * mon");
        assert!(
            !odd_day_mondays.matches_date(date(2026, 11, 30)),
            "Monday the 30th: day 30 is not in */2 (1, 3, .., 31)"
        );
        assert!(odd_day_mondays.matches_date(date(2026, 11, 23)), "Monday the 23rd: both match");
        assert!(!odd_day_mondays.matches_date(date(2026, 11, 25)), "the 25th is no Monday");
        let leap = cron("0 3 29 2 *");
        assert!(leap.matches_date(date(2028, 2, 29)));
        assert!(!leap.matches_date(date(2027, 3, 1)));
    }

    #[test]
    fn weekday_sets_for_limit_checks() {
        assert_eq!(cron("0 3 * * 1-5").possible_weekdays(), [true, true, true, true, true, false, false]);
        assert_eq!(cron("0 3 * * 1-5").weekly_weekdays(), [true, true, true, true, true, false, false]);
        assert_eq!(cron("0 3 1 * 1").possible_weekdays(), [true; 7]);
        assert_eq!(cron("0 3 1 * *").weekly_weekdays(), [false; 7]);
        assert_eq!(cron("0 3 * 6 *").weekly_weekdays(), [false; 7]);
        assert_eq!(cron("0 3 * * *").weekly_weekdays(), [true; 7]);
    }

    #[test]
    fn bad_expressions_say_which_field() {
        for (text, needle) in [
            ("0 3 * *", "5 fields"),
            ("60 3 * * *", "minute"),
            ("0 24 * * *", "hour"),
            ("0 3 0 * *", "day-of-month"),
            ("0 3 * 13 *", "month"),
            ("0 3 * * 8", "day-of-week"),
            ("*/0 3 * * *", "step of 0"),
            ("0 5-3 * * *", "backwards"),
            ("0 x * * *", "not a number"),
        ] {
            let err = text.parse::<CronExpr>().expect_err(text).to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
