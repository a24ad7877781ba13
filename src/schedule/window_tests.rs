use super::*;
use proptest::prelude::*;

fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn weekly(text: &str) -> Window {
    Window::Weekly(text.parse().unwrap_or_else(|e| panic!("{text}: {e}")))
}

fn cron(expr: &str, duration: &str) -> Window {
    let expr = expr.parse().unwrap_or_else(|e| panic!("{expr}: {e}"));
    let duration = duration.parse().unwrap_or_else(|e| panic!("{duration}: {e}"));
    Window::Cron(CronWindow::new(expr, duration).expect("valid cron window"))
}

fn schedule(zone: &str, windows: Vec<Window>) -> Schedule {
    Schedule::new(tz(zone), windows, [])
}

/// The open interval that contains `at`, as the schedule reports it.
fn open_around(s: &Schedule, at: &str) -> (Timestamp, Timestamp) {
    let at = ts(at);
    assert!(s.is_open(at), "expected open at {at}");
    let close = s.current_close(at).expect("closes");
    // Walk back minute by minute to the opening, at most a day.
    let mut open = at;
    while s.is_open(open - SignedDuration::from_mins(1)) {
        open -= SignedDuration::from_mins(1);
        assert!(at.duration_since(open) < SignedDuration::from_hours(30), "no opening found before {at}");
    }
    (open, close)
}

// ---- parsing ----

#[test]
fn weekly_spans_parse_and_display_as_written() {
    let span: WeeklySpan = "Mon-Fri 02:00-05:00".parse().expect("parses");
    assert_eq!(span.days, Days(0b0001_1111));
    assert_eq!((span.start, span.end), (120, 300));
    assert_eq!(span.to_string(), "Mon-Fri 02:00-05:00");
    let weekend: WeeklySpan = "sat,SUN 10:00-12:00".parse().expect("parses");
    assert_eq!(weekend.days, Days(0b0110_0000));
    let wrap: WeeklySpan = "Fri-Mon 23:00-02:00".parse().expect("parses");
    assert_eq!(wrap.days, Days(0b0111_0001));
    assert_eq!(wrap.nominal_minutes(), 180);
    let whole: WeeklySpan = "Sunday 00:00-24:00".parse().expect("parses");
    assert_eq!(whole.nominal_minutes(), 1440);
    let to_midnight: WeeklySpan = "Sun 22:00-00:00".parse().expect("parses");
    assert_eq!(to_midnight.end, 1440);
}

#[test]
fn bad_spans_say_what_to_write() {
    for (text, needle) in [
        ("Mon-Fri", "not a weekly span"),
        ("Mo 02:00-03:00", "not a day"),
        ("Mon 2:00-25:00", "not a time"),
        ("Mon 02:60-03:00", "not a time"),
        ("Mon 03:00-03:00", "same time"),
        ("Mon 00:00-00:00", "same time"),
        ("Mon 24:00-01:00", "not a time"),
        ("Mon 02:00", "not a weekly span"),
        ("Mé 02:00-03:00", "not a day"),
        ("éé 02:00-03:00", "not a day"),
        ("Mond 02:00-03:00", "not a day"),
    ] {
        let err = text.parse::<WeeklySpan>().expect_err(text).to_string();
        assert!(err.contains(needle), "{text}: {err}");
    }
}

#[test]
fn lengths_parse_and_display() {
    for (text, secs, shown) in
        [("2h", 7200, "2h"), ("90m", 5400, "1h30m"), ("1h 30m", 5400, "1h30m"), ("14d", 1_209_600, "14d")]
    {
        let length: Length = text.parse().expect(text);
        assert_eq!(length.duration().as_secs(), secs, "{text}");
        assert_eq!(length.to_string(), shown);
    }
    for bad in ["", "2", "h", "2x", "-2h", "99999999999999999999d"] {
        assert!(bad.parse::<Length>().is_err(), "{bad}");
    }
}

#[test]
fn cron_duration_is_bounded() {
    let expr: CronExpr = "0 3 * * *".parse().expect("parses");
    assert!(CronWindow::new(expr.clone(), "0m".parse().expect("length")).is_err());
    assert!(CronWindow::new(expr.clone(), "8d".parse().expect("length")).is_err());
    assert!(CronWindow::new(expr, "7d".parse().expect("length")).is_ok());
}

#[test]
fn windows_deserialize_from_strings_and_tables_with_clear_errors() {
    #[derive(Deserialize)]
    struct Doc {
        windows: Vec<Window>,
    }
    let doc: Doc = toml::from_str(r#"windows = ["Mon-Fri 02:00-05:00", { cron = "0 3 * * 6", duration = "2h" }]"#)
        .expect("parses");
    assert_eq!(doc.windows[0], weekly("Mon-Fri 02:00-05:00"));
    assert_eq!(doc.windows[1], cron("0 3 * * 6", "2h"));
    let err = toml::from_str::<Doc>(r#"windows = ["Mon-Fri 2-5"]"#).err().expect("refused").to_string();
    assert!(err.contains("not a time of day"), "{err}");
    let err = toml::from_str::<Doc>(r#"windows = [{ cron = "0 3 * *", duration = "2h" }]"#)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("5 fields"), "{err}");
    let err = toml::from_str::<Doc>(r#"windows = [{ cron = "0 3 * * *", length = "2h" }]"#)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("length"), "{err}");
}

#[test]
fn blackout_must_end_after_it_starts() {
    let t = ts("2026-12-24T00:00:00Z");
    assert!(Blackout::new(t, t).is_err());
    assert!(Blackout::new(t, t + SignedDuration::from_secs(1)).is_ok());
}

#[test]
fn week_minutes_count_wrap_and_compare() {
    let mut late_sunday = WeekMinutes::default();
    late_sunday.add(MINUTES_PER_WEEK - 30, 90); // Sunday 23:30 to Monday 01:00
    assert_eq!(late_sunday.count(), 90);
    let monday_night = weekly("Mon 00:00-02:00").possible_minutes();
    assert_eq!(late_sunday.first_outside(&monday_night), Some((Weekday::Sunday, 23 * 60 + 30)));
    assert_eq!(weekly("Fri-Mon 23:00-02:00").possible_minutes().count(), 4 * 180);
    assert_eq!(cron("0 3 * * 1-5", "2h").weekly_minutes().count(), 5 * 120);
    assert_eq!(cron("0 3 1 * *", "2h").weekly_minutes().count(), 0, "monthly is not weekly");
    assert_eq!(cron("0 3 1 * *", "2h").possible_minutes().count(), 7 * 120);
    // Dense cron: every minute for a week covers the week, and is quick to compute.
    assert_eq!(cron("* * * * *", "7d").possible_minutes().count(), MINUTES_PER_WEEK);
}

// ---- plain weeks ----

#[test]
fn weekly_span_opens_and_closes_on_its_days() {
    let s = schedule("Europe/Berlin", vec![weekly("Mon-Fri 02:00-05:00")]);
    // Friday 2026-11-27 02:00 CET is 01:00Z.
    assert!(!s.is_open(ts("2026-11-27T00:59:59Z")));
    assert_eq!(s.state(ts("2026-11-27T00:30:00Z")), WindowState::Closed { opens: Some(ts("2026-11-27T01:00:00Z")) });
    assert_eq!(s.state(ts("2026-11-27T01:00:00Z")), WindowState::Open { closes: Some(ts("2026-11-27T04:00:00Z")) });
    // Friday's window closed; the next is Monday.
    assert_eq!(s.next_open(ts("2026-11-27T04:00:00Z")), Some(ts("2026-11-30T01:00:00Z")));
    assert_eq!(s.current_close(ts("2026-11-27T04:00:00Z")), None);
}

#[test]
fn span_crossing_midnight_belongs_to_its_start_day() {
    let s = schedule("UTC", vec![weekly("Fri 23:00-02:00")]);
    assert_eq!(open_around(&s, "2026-11-28T01:00:00Z"), (ts("2026-11-27T23:00:00Z"), ts("2026-11-28T02:00:00Z")));
    assert!(!s.is_open(ts("2026-11-27T01:00:00Z")), "Thursday night is not Friday night");
}

#[test]
fn touching_windows_merge_and_always_open_never_closes() {
    let s = schedule("UTC", vec![weekly("Mon 22:00-24:00"), weekly("Tue 00:00-01:00")]);
    assert_eq!(s.current_close(ts("2026-11-30T23:00:00Z")), Some(ts("2026-12-01T01:00:00Z")));
    let always = schedule("Europe/Berlin", vec![Window::always()]);
    assert_eq!(always.state(ts("2026-11-27T12:00:00Z")), WindowState::Open { closes: None });
    let never = schedule("Europe/Berlin", vec![]);
    assert_eq!(never.state(ts("2026-11-27T12:00:00Z")), WindowState::Closed { opens: None });
}

#[test]
fn sparse_cron_is_found_years_ahead() {
    let s = schedule("UTC", vec![cron("0 3 29 2 *", "1h")]);
    assert_eq!(s.next_open(ts("2028-03-01T00:00:00Z")), Some(ts("2032-02-29T03:00:00Z")));
}

#[test]
fn blackouts_cut_windows() {
    let blackout = Blackout::new(ts("2026-11-30T02:00:00Z"), ts("2026-12-01T02:30:00Z")).expect("ordered");
    let s = Schedule::new(tz("UTC"), vec![weekly("Mon-Fri 01:00-03:00")], [blackout]);
    assert_eq!(s.current_close(ts("2026-11-30T01:00:00Z")), Some(ts("2026-11-30T02:00:00Z")));
    assert_eq!(s.next_open(ts("2026-11-30T02:00:00Z")), Some(ts("2026-12-01T02:30:00Z")));
    assert_eq!(
        s.open_intervals(ts("2026-11-30T00:00:00Z"), ts("2026-12-02T00:00:00Z")),
        [
            Interval { start: ts("2026-11-30T01:00:00Z"), end: ts("2026-11-30T02:00:00Z") },
            Interval { start: ts("2026-12-01T02:30:00Z"), end: ts("2026-12-01T03:00:00Z") },
        ]
    );
}

// ---- DST: Europe/Berlin (2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET) ----

#[test]
fn berlin_spring_forward_start_in_gap_opens_at_end_of_gap() {
    let s = schedule("Europe/Berlin", vec![weekly("Sun 02:30-04:00")]);
    // 03:00 CEST = 01:00Z; 04:00 CEST = 02:00Z.
    assert_eq!(s.next_open(ts("2026-03-28T23:00:00Z")), Some(ts("2026-03-29T01:00:00Z")));
    assert_eq!(s.current_close(ts("2026-03-29T01:00:00Z")), Some(ts("2026-03-29T02:00:00Z")));
}

#[test]
fn berlin_spring_forward_end_in_gap_closes_at_end_of_gap() {
    let s = schedule("Europe/Berlin", vec![weekly("Sun 01:00-02:30")]);
    assert_eq!(open_around(&s, "2026-03-29T00:30:00Z"), (ts("2026-03-29T00:00:00Z"), ts("2026-03-29T01:00:00Z")));
}

#[test]
fn berlin_spring_forward_span_inside_gap_is_skipped() {
    let s = schedule("Europe/Berlin", vec![weekly("Sun 02:10-02:50")]);
    // The next one is a week later, 02:10 CEST = 00:10Z.
    assert_eq!(s.next_open(ts("2026-03-28T12:00:00Z")), Some(ts("2026-04-05T00:10:00Z")));
}

#[test]
fn berlin_fall_back_opens_once_and_closes_at_the_later_end() {
    let s = schedule("Europe/Berlin", vec![weekly("Sun 02:30-04:00")]);
    // First 02:30 is CEST = 00:30Z; 04:00 CET = 03:00Z.
    assert_eq!(open_around(&s, "2026-10-25T01:45:00Z"), (ts("2026-10-25T00:30:00Z"), ts("2026-10-25T03:00:00Z")));
    let s = schedule("Europe/Berlin", vec![weekly("Sun 01:00-02:30")]);
    // 01:00 CEST = 23:00Z the day before; the *later* 02:30 is CET = 01:30Z.
    assert_eq!(open_around(&s, "2026-10-25T00:45:00Z"), (ts("2026-10-24T23:00:00Z"), ts("2026-10-25T01:30:00Z")));
}

#[test]
fn berlin_cron_keeps_its_duration_across_both_changes() {
    let s = schedule("Europe/Berlin", vec![cron("30 2 * * *", "2h")]);
    // Spring: opens at the end of the gap (03:00 CEST = 01:00Z), two real hours.
    assert_eq!(open_around(&s, "2026-03-29T01:30:00Z"), (ts("2026-03-29T01:00:00Z"), ts("2026-03-29T03:00:00Z")));
    // Fall: opens at the first 02:30 (CEST, 00:30Z), two real hours.
    assert_eq!(open_around(&s, "2026-10-25T01:00:00Z"), (ts("2026-10-25T00:30:00Z"), ts("2026-10-25T02:30:00Z")));
    // ...and not again at the second 02:30 (CET, 01:30Z) beyond that: next is Monday 02:30 CET.
    assert_eq!(s.next_open(ts("2026-10-25T02:30:00Z")), Some(ts("2026-10-26T01:30:00Z")));
}

#[test]
fn berlin_cron_minutes_inside_gap_open_once() {
    let s = schedule("Europe/Berlin", vec![cron("*/10 2 * * *", "5m")]);
    assert_eq!(open_around(&s, "2026-03-29T01:00:00Z"), (ts("2026-03-29T01:00:00Z"), ts("2026-03-29T01:05:00Z")));
    assert_eq!(s.next_open(ts("2026-03-29T01:05:00Z")), Some(ts("2026-03-30T00:00:00Z")));
}

// ---- DST: America/New_York (2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST) ----

#[test]
fn new_york_spring_forward() {
    let s = schedule("America/New_York", vec![weekly("Sun 02:30-03:30")]);
    // Opens at 03:00 EDT (07:00Z), closes 03:30 EDT (07:30Z).
    assert_eq!(open_around(&s, "2026-03-08T07:10:00Z"), (ts("2026-03-08T07:00:00Z"), ts("2026-03-08T07:30:00Z")));
}

#[test]
fn new_york_fall_back() {
    let s = schedule("America/New_York", vec![weekly("Sun 01:30-02:30")]);
    // First 01:30 is EDT (05:30Z); 02:30 EST is 07:30Z: two real hours that night.
    assert_eq!(open_around(&s, "2026-11-01T06:30:00Z"), (ts("2026-11-01T05:30:00Z"), ts("2026-11-01T07:30:00Z")));
    let s = schedule("America/New_York", vec![cron("30 1 * * 0", "1h")]);
    assert_eq!(open_around(&s, "2026-11-01T06:00:00Z"), (ts("2026-11-01T05:30:00Z"), ts("2026-11-01T06:30:00Z")));
    assert!(!s.is_open(ts("2026-11-01T06:45:00Z")), "the second 01:30 EST does not reopen it");
}

// ---- DST: Australia/Lord_Howe, a 30-minute shift
// (2026-04-05 02:00 +11 -> 01:30 +10:30; 2026-10-04 02:00 +10:30 -> 02:30 +11) ----

#[test]
fn lord_howe_spring_forward_half_hour() {
    let s = schedule("Australia/Lord_Howe", vec![weekly("Sun 02:00-03:00")]);
    // 02:00-02:30 never shows: opens at 02:30 +11 (15:30Z the day before), closes 03:00 +11 (16:00Z).
    assert_eq!(open_around(&s, "2026-10-03T15:45:00Z"), (ts("2026-10-03T15:30:00Z"), ts("2026-10-03T16:00:00Z")));
    let s = schedule("Australia/Lord_Howe", vec![cron("15 2 * * 0", "1h")]);
    assert_eq!(open_around(&s, "2026-10-03T16:00:00Z"), (ts("2026-10-03T15:30:00Z"), ts("2026-10-03T16:30:00Z")));
}

#[test]
fn lord_howe_fall_back_half_hour() {
    let s = schedule("Australia/Lord_Howe", vec![weekly("Sun 01:45-02:15")]);
    // First 01:45 is +11 (14:45Z); 02:15 is +10:30 (15:45Z): an hour that night.
    assert_eq!(open_around(&s, "2026-04-04T15:00:00Z"), (ts("2026-04-04T14:45:00Z"), ts("2026-04-04T15:45:00Z")));
}

// ---- properties ----

const ZONES: [&str; 3] = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"];
const DAY_ABBREVIATIONS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn window_strategy() -> impl Strategy<Value = Window> {
    let weekly = (1u8..128, 0u16..1440, 1u16..=1440).prop_filter_map("empty span", |(days, start, end)| {
        let names: Vec<&str> = (0..7).filter(|d| days & (1 << d) != 0).map(|d| DAY_ABBREVIATIONS[d]).collect();
        let clock = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        format!("{} {}-{}", names.join(","), clock(start), clock(end)).parse().ok().map(Window::Weekly)
    });
    // Hours 0-3 are where DST changes happen, so favour them.
    let cron = (
        0u8..60,
        prop_oneof![0u8..4, 0u8..24],
        prop_oneof![Just("*".to_owned()), (0u8..7).prop_map(|d| d.to_string())],
        1i64..720,
        any::<bool>(),
    )
        .prop_map(|(minute, hour, weekday, minutes, every_ten)| {
            let minute = if every_ten { format!("{}/10", minute % 10) } else { minute.to_string() };
            cron(&format!("{minute} {hour} * * {weekday}"), &format!("{minutes}m"))
        });
    prop_oneof![3 => weekly, 1 => cron]
}

/// Instants near the zone's DST changes of 2026 and 2027, or anywhere in those years.
fn instant_near_transition(zone: &'static str) -> impl Strategy<Value = Timestamp> {
    let changes: Vec<Timestamp> =
        tz(zone).following(ts("2026-01-01T00:00:00Z")).take(4).map(|t| t.timestamp()).collect();
    let year = 365 * 86_400i64;
    prop_oneof![
        3 => (proptest::sample::select(changes), -4 * 86_400i64..4 * 86_400)
            .prop_map(|(change, secs)| change + SignedDuration::from_secs(secs)),
        1 => (0..2 * year).prop_map(|secs| ts("2026-01-01T00:00:00Z") + SignedDuration::from_secs(secs)),
    ]
}

fn case_strategy() -> impl Strategy<Value = (&'static str, Vec<Window>, Vec<(i64, i64)>, Timestamp)> {
    proptest::sample::select(ZONES.to_vec()).prop_flat_map(|zone| {
        (
            Just(zone),
            proptest::collection::vec(window_strategy(), 0..4),
            // Blackouts as (offset from the instant, length) in minutes.
            proptest::collection::vec((-3 * 1440i64..3 * 1440, 1i64..3 * 1440), 0..3),
            instant_near_transition(zone),
        )
    })
}

fn build(zone: &str, windows: Vec<Window>, blackouts: &[(i64, i64)], t: Timestamp) -> (Schedule, Vec<Blackout>) {
    let blackouts: Vec<Blackout> = blackouts
        .iter()
        .map(|&(offset, len)| {
            let start = t + SignedDuration::from_mins(offset);
            Blackout::new(start, start + SignedDuration::from_mins(len)).expect("positive length")
        })
        .collect();
    (Schedule::new(tz(zone), windows, blackouts.clone()), blackouts)
}

/// Whether `t` is open by reading the wall clock directly (valid when no clock change is near).
fn wall_clock_open(zone: &TimeZone, windows: &[Window], t: Timestamp) -> bool {
    let local = zone.to_datetime(t);
    let second = i32::from(local.hour()) * 3600 + i32::from(local.minute()) * 60 + i32::from(local.second());
    let today = local.date();
    let Ok(yesterday) = today.yesterday() else { return false };
    windows.iter().any(|window| match window {
        Window::Weekly(span) => {
            let (start, end) = (i32::from(span.start) * 60, i32::from(span.end) * 60);
            if span.end > span.start {
                span.days.contains(today.weekday()) && start <= second && second < end
            } else {
                (span.days.contains(today.weekday()) && second >= start)
                    || (span.days.contains(yesterday.weekday()) && second < end)
            }
        }
        Window::Cron(w) => [yesterday, today].iter().filter(|d| w.expr.matches_date(**d)).any(|d| {
            w.expr.times().any(|(h, m)| {
                let Ok(start) = zone.to_timestamp(d.at(h as i8, m as i8, 0, 0)) else { return false };
                start <= t && t < start + w.duration.duration()
            })
        }),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// `is_open` agrees with `state`/`next_open`/`current_close`, and blackouts always win.
    #[test]
    fn state_agrees_with_is_open((zone, windows, blackouts, t) in case_strategy()) {
        let (s, blackouts) = build(zone, windows, &blackouts, t);
        let second = SignedDuration::from_secs(1);
        let open = s.is_open(t);
        match s.state(t) {
            WindowState::Open { closes } => {
                prop_assert!(open, "state says open, is_open says closed at {}", t);
                prop_assert_eq!(s.next_open(t), Some(t));
                prop_assert_eq!(s.current_close(t), closes);
                if let Some(close) = closes {
                    prop_assert!(close > t);
                    prop_assert!(!s.is_open(close), "open at its close {}", close);
                    prop_assert!(s.is_open(close - second), "closed just before its close {}", close);
                    for i in 1..8 {
                        let inside = t + close.duration_since(t) * i / 8;
                        prop_assert!(s.is_open(inside), "closed at {} inside [{}, {})", inside, t, close);
                    }
                }
            }
            WindowState::Closed { opens } => {
                prop_assert!(!open, "state says closed, is_open says open at {}", t);
                prop_assert_eq!(s.current_close(t), None);
                prop_assert_eq!(s.next_open(t), opens);
                if let Some(opens) = opens {
                    prop_assert!(opens > t);
                    prop_assert!(s.is_open(opens), "closed at its opening {}", opens);
                    prop_assert!(!s.is_open(opens - second), "open just before its opening {}", opens);
                    for i in 1..8 {
                        let inside = t + opens.duration_since(t) * i / 8;
                        prop_assert!(!s.is_open(inside), "open at {} before next opening {}", inside, opens);
                    }
                }
            }
        }
        for blackout in &blackouts {
            let b = blackout.interval();
            for at in [b.start, b.start + b.end.duration_since(b.start) / 2, b.end - second] {
                prop_assert!(!s.is_open(at), "open at {} inside blackout", at);
                prop_assert!(s.next_open(at).is_none_or(|o| o >= b.end), "next opening inside blackout");
            }
        }
    }

    /// The nominal-week sets the admin's limits are checked on agree with the real schedule:
    /// every open instant lies in `possible_minutes`, and every minute of `weekly_minutes` is open.
    #[test]
    fn week_minutes_agree_with_the_schedule((zone, windows, _b, t) in case_strategy()) {
        let zone_tz = tz(zone);
        let day = SignedDuration::from_hours(24);
        let near_change = zone_tz.following(t - day * 9).next().is_some_and(|c| c.timestamp() < t + day * 2);
        prop_assume!(!near_change);
        let s = Schedule::new(zone_tz.clone(), windows.clone(), []);
        let local = zone_tz.to_datetime(t);
        let minute = local.date().weekday().to_monday_zero_offset() as u32 * 1440
            + local.hour() as u32 * 60
            + local.minute() as u32;
        let (mut possible, mut weekly) = (WeekMinutes::default(), WeekMinutes::default());
        for window in &windows {
            possible.union(&window.possible_minutes());
            weekly.union(&window.weekly_minutes());
        }
        if s.is_open(t) {
            prop_assert!(possible.contains(minute), "open at {} outside possible_minutes", local);
        }
        if weekly.contains(minute) {
            prop_assert!(s.is_open(t), "closed at {} inside weekly_minutes", local);
        }
    }

    /// Away from clock changes and blackouts, open means "the wall clock reads inside a window".
    #[test]
    fn matches_the_wall_clock_away_from_changes((zone, windows, _b, t) in case_strategy()) {
        let zone_tz = tz(zone);
        let day = SignedDuration::from_hours(24);
        let near_change = zone_tz.following(t - day * 2).next().is_some_and(|c| c.timestamp() < t + day * 2);
        prop_assume!(!near_change);
        let s = Schedule::new(zone_tz.clone(), windows.clone(), []);
        prop_assert_eq!(s.is_open(t), wall_clock_open(&zone_tz, &windows, t));
    }
}

#[test]
fn dense_cron_that_never_closes_answers_quickly() {
    let s = schedule("UTC", vec![cron("* * * * *", "1m")]);
    let started = std::time::Instant::now();
    assert_eq!(s.state(ts("2026-11-27T12:00:00Z")), WindowState::Open { closes: None });
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "took {:?}", started.elapsed());
}

#[test]
fn every_minute_cron_fires_once_per_wall_clock_minute_on_fall_back_night() {
    // Like cron itself, the repeated hour does not fire again, so it stays closed (rule 2).
    let s = schedule("Europe/Berlin", vec![cron("* * * * *", "1m")]);
    assert_eq!(s.current_close(ts("2026-10-24T12:00:00Z")), Some(ts("2026-10-25T01:00:00Z")));
    assert_eq!(s.next_open(ts("2026-10-25T01:00:00Z")), Some(ts("2026-10-25T02:00:00Z")));
}

#[test]
fn bundled_tzdb_gives_the_same_answers_without_zoneinfo() {
    // A router may lack /usr/share/zoneinfo; jiff then falls back to its bundled copy.
    let bundled = jiff::tz::TimeZoneDatabase::bundled();
    for zone in ZONES {
        let bundled_tz = bundled.get(zone).unwrap_or_else(|e| panic!("{zone} is bundled: {e}"));
        let windows = vec![weekly("Sun 01:45-02:45"), cron("30 2 * * *", "1h")];
        let (a, b) = (Schedule::new(bundled_tz, windows.clone(), []), schedule(zone, windows));
        let mut t = ts("2026-03-01T00:00:00Z");
        while t < ts("2026-11-15T00:00:00Z") {
            assert_eq!(a.state(t), b.state(t), "{zone} at {t}");
            t += SignedDuration::from_hours(13);
        }
    }
}

proptest! {
    /// The single-pass subtraction covers exactly the minutes the open intervals cover and no
    /// hole does.
    #[test]
    fn subtracting_blackouts_leaves_exactly_the_open_minutes_outside_them(
        open in proptest::collection::vec((0i64..2000, 1i64..60), 0..20),
        holes in proptest::collection::vec((0i64..2000, 1i64..60), 0..20),
    ) {
        let at = |m: i64| Timestamp::from_second(1_800_000_000 + m * 60).unwrap();
        let intervals = |spans: &[(i64, i64)]| {
            let mut v: Vec<Interval> =
                spans.iter().map(|&(s, len)| Interval { start: at(s), end: at(s + len) }).collect();
            v.sort();
            merge(v)
        };
        let (open_iv, hole_iv) = (intervals(&open), intervals(&holes));
        let covered = |ivs: &[Interval], m: i64| ivs.iter().any(|iv| iv.start <= at(m) && at(m) < iv.end);
        let left = subtract(open_iv.clone(), &hole_iv);
        for w in left.windows(2) {
            prop_assert!(w[0].end <= w[1].start, "sorted and disjoint: {left:?}");
        }
        for m in 0..2100 {
            prop_assert_eq!(covered(&left, m), covered(&open_iv, m) && !covered(&hole_iv, m), "minute {}", m);
        }
    }
}
