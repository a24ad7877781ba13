//! Pure scheduling decisions: when a group's devices may be updated. No I/O; time is an argument.

pub mod cron;
pub mod estimate;
pub mod instant;
pub mod plan;
pub mod snapshot;
pub mod window;

pub use cron::{CronError, CronExpr};
pub use window::{
    Blackout, CronWindow, Interval, Length, Schedule, WeekMinutes, WeeklySpan, Window, WindowError, WindowState,
};
