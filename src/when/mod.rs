//! Points in time: how snapshot times are recorded and how the user names
//! them on the command line.
//!
//! A snapshot time is an instant plus the UTC offset that was local when it
//! was taken, written as RFC 3339 (`2026-02-15T02:00:00.5+01:00`). User input
//! is read in the local time zone unless it carries an offset.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, DateTime};
use jiff::fmt::temporal::Pieces;
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use local::Local;

mod local;

/// An instant with the offset it is displayed in.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotTime {
    /// The instant.
    pub timestamp: Timestamp,
    /// The UTC offset it was recorded with.
    pub offset: Offset,
}

impl SnapshotTime {
    /// Now, with the local offset.
    pub fn now() -> Self {
        Self::local(Timestamp::now())
    }

    /// `timestamp` with the offset the local time zone has at that instant.
    pub fn local(timestamp: Timestamp) -> Self {
        Self::in_zone(timestamp, &TimeZone::system())
    }

    /// `timestamp` with the offset `zone` has at that instant.
    pub(super) fn in_zone(timestamp: Timestamp, zone: &TimeZone) -> Self {
        Self::with_offset(timestamp, zone.to_offset(timestamp))
    }

    /// `timestamp` shown with `offset` cut to whole minutes: RFC 3339 has
    /// no seconds in an offset, and a zone's old local mean time (Monrovia
    /// until 1972 was 44:30 behind UTC) was written rounded, which moved
    /// the recorded instant by up to 30 s.
    fn with_offset(timestamp: Timestamp, offset: Offset) -> Self {
        let minutes = offset.seconds() / 60 * 60;
        Self {
            timestamp,
            offset: Offset::from_seconds(minutes).unwrap_or(Offset::UTC),
        }
    }

    /// Shown in the local time zone, to the second, for tables (with the
    /// offset in an hour the clocks showed twice).
    pub fn display_local(&self) -> String {
        local::shown(self.timestamp, &TimeZone::system())
    }
}

impl PartialEq for SnapshotTime {
    fn eq(&self, other: &Self) -> bool {
        self.timestamp == other.timestamp
    }
}
impl Eq for SnapshotTime {}
impl PartialOrd for SnapshotTime {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SnapshotTime {
    fn cmp(&self, other: &Self) -> Ordering {
        self.timestamp.cmp(&other.timestamp)
    }
}

impl fmt::Display for SnapshotTime {
    /// RFC 3339 with the recorded offset.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.timestamp.display_with_offset(self.offset))
    }
}

impl FromStr for SnapshotTime {
    type Err = String;

    /// Parses RFC 3339 with an offset (or `Z`), keeping the offset.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |e: jiff::Error| format!("{text:?} is not an RFC 3339 time: {e}");
        let timestamp = Timestamp::from_str(text).map_err(bad)?;
        let offset = Pieces::parse(text)
            .map_err(bad)?
            .to_numeric_offset()
            .unwrap_or(Offset::UTC);
        Ok(Self { timestamp, offset })
    }
}

impl Serialize for SnapshotTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SnapshotTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses a user-given time for `snapshot --time`: RFC 3339 with offset,
/// `YYYY-MM-DD HH:MM[:SS]` or `YYYY-MM-DDTHH:MM[:SS]` in `tz`, or a bare
/// date `YYYY-MM-DD` / `YYYYMMDD` meaning its first instant in `tz`.
pub fn parse_instant(text: &str, tz: &TimeZone) -> Result<SnapshotTime, String> {
    let text = text.trim();
    instant(text, tz, Local::Exact).map_err(|bad| bad.message(text))
}

fn not_a_time(text: &str) -> String {
    format!(
        "{text:?} is not a time: use RFC 3339 (2026-02-15T02:00:00+01:00), \
         \"2026-02-15 14:30\" or a date (2026-02-15)"
    )
}

/// Why a text is not an instant.
enum Bad {
    /// It has none of the accepted forms.
    Form,
    /// It has one, but names an instant outside [`Timestamp::MIN`,
    /// `Timestamp::MAX`].
    Range,
    /// It names something no clock shows, or more than one instant (the
    /// whole message).
    Clock(String),
}

impl Bad {
    fn message(self, text: &str) -> String {
        match self {
            Bad::Form => not_a_time(text),
            Bad::Range => out_of_range(text),
            Bad::Clock(why) => why,
        }
    }
}

fn instant(text: &str, tz: &TimeZone, local: Local) -> Result<SnapshotTime, Bad> {
    if let Ok(t) = text.parse::<SnapshotTime>() {
        return as_rfc3339_allows(text, t);
    }
    // A well-formed time with an offset that did not parse is out of range;
    // it must never be read again without its offset, as local time.
    if Pieces::parse(text).is_ok_and(|p| p.to_numeric_offset().is_some()) {
        return Err(Bad::Range);
    }
    let (plain, zone) = zoned(text, tz)?;
    if let Some(day) = bare_date(plain) {
        return local::day_start(text, day, &zone);
    }
    let civil = parse_civil(plain).ok_or(Bad::Form)?;
    local::resolve(text, civil, &zone, local)
}

/// A time with an offset as RFC 3339 allows it: whole minutes, less than a
/// day either way (jiff takes up to 25:59:59; a record with such an offset
/// broke every reader of `snapshots --json` that checks its times, and
/// seconds were cut off, moving the instant). A zone in brackets must
/// agree with the offset at that instant.
fn as_rfc3339_allows(text: &str, time: SnapshotTime) -> Result<SnapshotTime, Bad> {
    let seconds = time.offset.seconds();
    if seconds.unsigned_abs() >= 24 * 3600 || seconds % 60 != 0 {
        return Err(Bad::Clock(format!(
            "{text:?} has an offset RFC 3339 does not allow (whole minutes, from -23:59 to +23:59)"
        )));
    }
    let (_, zone) = zoned(text, &TimeZone::fixed(time.offset))?;
    let there = zone.to_offset(time.timestamp);
    // `Z` with a zone (RFC 9557) gives the instant, and the zone its offset.
    let zulu = Pieces::parse(text)
        .is_ok_and(|p| matches!(p.offset(), Some(jiff::fmt::temporal::PiecesOffset::Zulu)));
    if zulu {
        return Ok(SnapshotTime::with_offset(time.timestamp, there));
    }
    if there != time.offset {
        return Err(Bad::Clock(format!(
            "{text:?} gives the offset {}, but its zone's offset then was {there}",
            time.offset
        )));
    }
    Ok(time)
}

/// The text without a zone in brackets (`2026-02-15 14:30[Asia/Tokyo]`),
/// and the zone its local time is read in: the one in brackets (it was
/// ignored, and the time read in the local zone), else `tz`.
fn zoned<'t>(text: &'t str, tz: &TimeZone) -> Result<(&'t str, TimeZone), Bad> {
    let Some(at) = text.find('[').filter(|_| text.ends_with(']')) else {
        return Ok((text, tz.clone()));
    };
    let (plain, annotations) = text.split_at(at);
    // jiff reads the brackets (names, offsets, the `!` of RFC 9557, other
    // annotations after the zone) after any time: this one only carries them.
    let carrier = format!("2000-01-01T00:00{annotations}");
    let zone = Pieces::parse(&carrier)
        .map_err(|e| e.to_string())
        .and_then(|p| p.to_time_zone().map_err(|e| e.to_string()))
        .map_err(|e| {
            Bad::Clock(format!(
                "{text:?} names a time zone this system does not know: {e}"
            ))
        })?;
    Ok((plain, zone.unwrap_or_else(|| tz.clone())))
}

/// The message for a time cairn cannot represent, naming the range it can.
fn out_of_range(text: &str) -> String {
    format!(
        "{text:?} is out of range: times must lie between {} and {}",
        Timestamp::MIN,
        Timestamp::MAX
    )
}

/// Which end of a named day a bare date stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayEnd {
    /// The day's first instant (`--after 2026-02-15` includes the 15th).
    Start,
    /// The day's last instant (`--at 2026-02-15`: as it was that evening).
    End,
}

/// Parses a point in time the user names to select snapshots (`--at`,
/// `--before`, `--after`): everything [`parse_instant`] takes, except that a
/// bare date (`2026-02-15`, `20260215`, `today`, `yesterday`) stands for
/// the `day_end` of that day, plus `now` and relative forms measured back
/// from `now` in `tz` (`3 days ago`, `2h ago`, `1 week ago`).
pub fn parse_point(
    text: &str,
    tz: &TimeZone,
    now: Timestamp,
    day_end: DayEnd,
) -> Result<Timestamp, String> {
    let text = text.trim();
    let (plain, zone) = zoned(text, tz).map_err(|bad| bad.message(text))?;
    let today = now.to_zoned_datetime(zone.clone());
    let named_day = match plain {
        "now" => return Ok(now),
        "today" => Some(today.date()),
        "yesterday" => today.date().yesterday().ok(),
        _ => bare_date(plain),
    };
    if let Some(day) = named_day {
        return local::day_bound(day, &zone, day_end)
            .map(|t| t.timestamp)
            .map_err(|bad| bad.message(text));
    }
    if plain.ends_with("ago") {
        return relative(plain, &today);
    }
    match instant(text, tz, Local::Bound(day_end)) {
        Ok(t) => Ok(t.timestamp),
        Err(Bad::Form) => Err(format!(
            "{}, 20260215, yesterday or a relative time such as \"3 days ago\" or \"2h ago\"",
            not_a_time(text)
        )),
        Err(bad) => Err(bad.message(text)),
    }
}

/// `2026-02-15` or `20260215`, and nothing longer (jiff's `Date` parser
/// also accepts a date with a time, which is not a bare date).
fn bare_date(text: &str) -> Option<Date> {
    match text.len() {
        10 => Date::from_str(text).ok(),
        _ => compact_date(text),
    }
}

/// `3 days ago`, `2h ago`: that long before `now`, counted in calendar
/// units in the local zone (so "1 day ago" across a DST change is 23 or 25 h).
fn relative(text: &str, now: &jiff::ZonedDateTime) -> Result<Timestamp, String> {
    let span: jiff::Span = text
        .parse()
        .map_err(|e| format!("{text:?} is not a relative time such as \"3 days ago\": {e}"))?;
    now.checked_add(span)
        .map(|z| z.timestamp())
        .map_err(|_| out_of_range(text))
}

fn parse_civil(text: &str) -> Option<DateTime> {
    if let Ok(dt) = DateTime::from_str(&text.replacen(' ', "T", 1)) {
        return Some(dt);
    }
    if let Ok(date) = Date::from_str(text) {
        return Some(date.to_datetime(jiff::civil::Time::midnight()));
    }
    compact_date(text).map(|d| d.to_datetime(jiff::civil::Time::midnight()))
}

/// `20260215`, the form dated backup files use.
fn compact_date(text: &str) -> Option<Date> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year = text[0..4].parse().ok()?;
    let month = text[4..6].parse().ok()?;
    let day = text[6..8].parse().ok()?;
    Date::new(year, month, day).ok()
}

/// Parses a duration such as `30s`, `5m`, `1h30m`, `7d` or a plain number
/// of seconds; one longer than [`MAX_DURATION_SECS`] is taken as that
/// long. Unbounded, it overflowed the clock where it was added to the time
/// now (a panic, after a snapshot had committed); a century means "never"
/// to every option (`--lock-wait 9223372036854775807` waits without end).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let max = std::time::Duration::from_secs(MAX_DURATION_SECS);
    if let Some(secs) = whole_days(text).or_else(|| saturating_count(text)) {
        return Ok(std::time::Duration::from_secs(secs).min(max));
    }
    let signed = SignedDuration::from_str(text)
        .or_else(|_| in_days_of_24_hours(text))
        .map_err(|_| format!("{text:?} is not a duration: use e.g. 30s, 5m, 1h or 7d"))?;
    let duration =
        std::time::Duration::try_from(signed).map_err(|_| format!("{text:?} is negative"))?;
    Ok(duration.min(max))
}

/// `1d12h` or `2 weeks 3 days` (jiff's friendly format, with days and
/// weeks of 24-hour days), which a duration of fixed length does not take.
fn in_days_of_24_hours(text: &str) -> Result<SignedDuration, jiff::Error> {
    let span: jiff::Span = text.parse()?;
    span.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
}

/// The seconds of `30d` or `2w` (days of 24 hours), which jiff's spans
/// of fixed length do not take; saturating, so too long stays too long.
fn whole_days(text: &str) -> Option<u64> {
    let unit = |suffix: char, secs: u64| {
        let n = saturating_count(text.strip_suffix(suffix)?)?;
        Some(n.saturating_mul(secs))
    };
    unit('d', 86_400).or_else(|| unit('w', 7 * 86_400))
}

/// A number of digits only, at most `u64::MAX` (more is still too long).
fn saturating_count(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(u64::MAX))
}

/// The longest duration any option takes: 100 years of 365.25 days.
pub const MAX_DURATION_SECS: u64 = 3_155_760_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn tz() -> TimeZone {
        TimeZone::fixed(jiff::tz::offset(1))
    }

    #[test]
    fn an_offset_with_seconds_keeps_the_instant_through_the_record() {
        let monrovia = TimeZone::get("Africa/Monrovia").unwrap();
        let t = parse_instant("1960-06-01 12:00", &monrovia).unwrap();
        let back: SnapshotTime = t.to_string().parse().unwrap();
        assert_eq!(back.timestamp, t.timestamp, "{t}");
        assert_eq!(t.timestamp.to_string(), "1960-06-01T12:44:30Z");
    }

    #[test]
    fn rfc3339_keeps_its_offset_through_display() {
        let t: SnapshotTime = "2026-02-15T02:00:00.5+01:00".parse().unwrap();
        assert_eq!(t.to_string(), "2026-02-15T02:00:00.5+01:00");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<SnapshotTime>(&json).unwrap(), t);
    }

    #[test]
    fn civil_forms_are_read_in_the_given_zone() {
        let want: SnapshotTime = "2026-02-15T14:30:00+01:00".parse().unwrap();
        assert_eq!(parse_instant("2026-02-15 14:30", &tz()).unwrap(), want);
        assert_eq!(parse_instant("2026-02-15T14:30:00", &tz()).unwrap(), want);
        let midnight: SnapshotTime = "2026-02-15T00:00:00+01:00".parse().unwrap();
        assert_eq!(parse_instant("2026-02-15", &tz()).unwrap(), midnight);
        assert_eq!(parse_instant("20260215", &tz()).unwrap(), midnight);
    }

    #[test]
    fn nonsense_is_refused_with_the_accepted_forms() {
        let err = parse_instant("last tuesday", &tz()).unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
        assert!(parse_instant("20261345", &tz()).is_err());
    }

    fn at(text: &str, now: &str) -> String {
        let now: Timestamp = now.parse().unwrap();
        parse_point(text, &tz(), now, DayEnd::End)
            .unwrap()
            .display_with_offset(jiff::tz::offset(1))
            .to_string()
    }

    #[test]
    fn a_bare_date_for_selection_means_the_end_of_that_day_in_the_zone() {
        let now = "2026-03-01T12:00:00Z";
        assert_eq!(at("2026-02-15", now), "2026-02-15T23:59:59.999999999+01:00");
        assert_eq!(at("20260215", now), "2026-02-15T23:59:59.999999999+01:00");
        assert_eq!(at("yesterday", now), "2026-02-28T23:59:59.999999999+01:00");
        assert_eq!(at("today", now), "2026-03-01T23:59:59.999999999+01:00");
        let start = parse_point("2026-02-15", &tz(), now.parse().unwrap(), DayEnd::Start).unwrap();
        assert_eq!(start.to_string(), "2026-02-14T23:00:00Z");
    }

    #[test]
    fn exact_times_and_offsets_are_taken_as_given() {
        let now = "2026-03-01T12:00:00Z";
        assert_eq!(at("2026-02-15 14:30", now), "2026-02-15T14:30:00+01:00");
        assert_eq!(
            at("2026-02-15T02:00:00-05:00", now),
            "2026-02-15T08:00:00+01:00"
        );
        assert_eq!(at("now", now), "2026-03-01T13:00:00+01:00");
    }

    #[test]
    fn relative_forms_count_back_from_now() {
        let now = "2026-03-01T12:00:00Z";
        assert_eq!(at("3 days ago", now), "2026-02-26T13:00:00+01:00");
        assert_eq!(at("2h ago", now), "2026-03-01T11:00:00+01:00");
        assert_eq!(at("1 week ago", now), "2026-02-22T13:00:00+01:00");
        let err = parse_point("next week", &tz(), now.parse().unwrap(), DayEnd::End).unwrap_err();
        assert!(err.contains("3 days ago"), "{err}");
    }

    #[test]
    fn durations_take_units_or_seconds() {
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("5m").unwrap().as_secs(), 300);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("2d").unwrap().as_secs(), 172_800);
        assert_eq!(parse_duration("1w").unwrap().as_secs(), 604_800);
        assert_eq!(parse_duration("1d12h").unwrap().as_secs(), 129_600);
        assert_eq!(
            parse_duration("2 weeks 1 day").unwrap().as_secs(),
            15 * 86_400
        );
        assert!(
            parse_duration("1mo").is_err(),
            "a month has no fixed length"
        );
        let century = std::time::Duration::from_secs(MAX_DURATION_SECS);
        assert!(parse_duration("36524d").unwrap() < century);
        for long in [
            "36526d",
            "9223372036854775807s",
            "99999999999999999999w",
            "99999999999999999999",
        ] {
            assert_eq!(parse_duration(long).unwrap(), century, "{long}");
        }
        assert!(parse_duration("soon").is_err());
    }

    // Regression: #14 item 16
    #[test]
    fn times_past_the_supported_range_are_called_out_of_range_naming_the_range() {
        let now: Timestamp = "2026-03-01T12:00:00Z".parse().unwrap();
        let instants = [
            "9999-12-31",
            "99991231",
            "9999-12-31 12:00",
            "9999-12-31T10:00:00+01:00",
        ];
        for text in instants {
            let err = parse_instant(text, &tz()).unwrap_err();
            assert_out_of_range(text, &err);
            let err = parse_point(text, &tz(), now, DayEnd::End).unwrap_err();
            assert_out_of_range(text, &err);
        }
        for text in ["9999-12-31", "-009999-01-01", "19000 years ago"] {
            let err = parse_point(text, &tz(), now, DayEnd::Start).unwrap_err();
            assert_out_of_range(text, &err);
        }
    }

    fn assert_out_of_range(text: &str, err: &str) {
        assert!(err.contains("out of range"), "{text}: {err}");
        assert!(
            err.contains("-009999-01-02T01:59:59Z and 9999-12-30T22:00:00"),
            "{text}: {err}"
        );
        assert!(!err.contains("does not exist"), "{text}: {err}");
        assert!(!err.contains("yesterday"), "{text}: {err}");
    }

    // Regression: #14 item 16 (a time with an offset is never re-read
    // without it, which silently moved it by the local offset)
    #[test]
    fn a_time_with_an_offset_past_the_range_is_not_read_as_local_time() {
        let east = TimeZone::fixed(jiff::tz::offset(9));
        let err = parse_instant("9999-12-30T23:00:00+00:00", &east).unwrap_err();
        assert!(err.contains("out of range"), "{err}");
    }
}
