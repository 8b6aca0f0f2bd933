//! Local clock times, which name no instant or two of them around a change
//! of offset: in Europe/Berlin, 2026-03-29 02:30 never happened (the clocks
//! went from 02:00 to 03:00) and 2026-10-25 02:30 happened twice.
//!
//! A time for a snapshot's record must be one instant: such a time is
//! refused, with what to give instead. A time that bounds a selection is
//! read so that the order of the clock is kept: jiff's usual rule moved a
//! skipped 02:30 to 03:30, and `@02:30` then chose a snapshot taken after
//! `@03:00` did.

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};

use super::{Bad, DayEnd, SnapshotTime};

/// How a local time is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Local {
    /// As one instant, or not at all (`snapshot --time`).
    Exact,
    /// As the start or end of a selection (`--after`, `--before`, `@WHEN`):
    /// a skipped time is the change of offset itself, a repeated one its
    /// first occurrence for a start and its second for an end.
    Bound(DayEnd),
}

/// The instant `civil` (the text `text`) names in `zone`, read as `local`.
pub(super) fn resolve(
    text: &str,
    civil: DateTime,
    zone: &TimeZone,
    local: Local,
) -> Result<SnapshotTime, Bad> {
    match (zone.to_ambiguous_timestamp(civil).offset(), local) {
        (AmbiguousOffset::Unambiguous { offset }, _) => at(civil, offset),
        (AmbiguousOffset::Gap { before, after }, Local::Exact) => Err(Bad::Clock(format!(
            "{text:?} never happened {}: the clocks went forward then (from UTC{before} \
             to UTC{after}); give the time with its offset",
            where_in(zone)
        ))),
        (AmbiguousOffset::Fold { before, after }, Local::Exact) => {
            Err(twice(text, civil, zone, (before, after)))
        }
        (AmbiguousOffset::Gap { after, .. }, Local::Bound(end)) => {
            change_of_offset(civil, after, zone, end)
        }
        (AmbiguousOffset::Fold { before, .. }, Local::Bound(DayEnd::Start)) => at(civil, before),
        (AmbiguousOffset::Fold { after, .. }, Local::Bound(DayEnd::End)) => at(civil, after),
    }
}

/// The refusal of `civil` (the text `text`), which the clocks showed with
/// both offsets, naming the two instants it could mean.
fn twice(text: &str, civil: DateTime, zone: &TimeZone, (before, after): (Offset, Offset)) -> Bad {
    let with = |offset| at(civil, offset).map_or_else(|_| String::new(), |t| t.to_string());
    Bad::Clock(format!(
        "{text:?} happened twice {} (the clocks went back from UTC{before} to \
         UTC{after}); give the one meant with its offset: {} or {}",
        where_in(zone),
        with(before),
        with(after)
    ))
}

/// Where a local time is read, for messages: the zone's name when it has
/// one (a zone in brackets, or `TZ`), else the local time zone.
fn where_in(zone: &TimeZone) -> String {
    match zone.iana_name() {
        Some(name) => format!("in {name}"),
        None => "in the local time zone".to_owned(),
    }
}

/// The first instant of `day` in `zone` (the text `text`): for a record, a
/// day the clocks skipped whole is refused (Apia skipped 2011-12-30).
pub(super) fn day_start(text: &str, day: Date, zone: &TimeZone) -> Result<SnapshotTime, Bad> {
    let start = day_bound(day, zone, DayEnd::Start)?;
    if start.timestamp.to_zoned_datetime(zone.clone()).date() != day {
        return Err(Bad::Clock(format!(
            "{text:?} never happened {}: the clocks skipped the whole day",
            where_in(zone)
        )));
    }
    Ok(start)
}

/// The first or last instant of `day` in `zone`, as the bounds of a
/// selection: a day's end is the instant before the next day starts, and
/// a day starts when its first local time is shown (at the change of
/// offset if the clocks skipped its midnight, or the whole day).
pub(super) fn day_bound(day: Date, zone: &TimeZone, end: DayEnd) -> Result<SnapshotTime, Bad> {
    let start_of = |day: Date| {
        let midnight = day.to_datetime(jiff::civil::Time::midnight());
        // A bound is never refused, so no text is needed for a message.
        resolve("", midnight, zone, Local::Bound(DayEnd::Start))
    };
    match end {
        DayEnd::Start => start_of(day),
        DayEnd::End => {
            let next = start_of(day.tomorrow().map_err(|_| Bad::Range)?)?;
            Ok(SnapshotTime::in_zone(just_before(next.timestamp)?, zone))
        }
    }
}

/// `civil` read with `offset`.
fn at(civil: DateTime, offset: Offset) -> Result<SnapshotTime, Bad> {
    let timestamp = offset.to_timestamp(civil).map_err(|_| Bad::Range)?;
    Ok(SnapshotTime::with_offset(timestamp, offset))
}

/// The instant the clocks skipped `civil` (read with `after`, the offset
/// after the change, it comes before the change): every earlier instant
/// showed an earlier time, every later one a later time. An end bound is
/// the last instant before it.
fn change_of_offset(
    civil: DateTime,
    after: Offset,
    zone: &TimeZone,
    end: DayEnd,
) -> Result<SnapshotTime, Bad> {
    let before_change = after.to_timestamp(civil).map_err(|_| Bad::Range)?;
    let change = zone
        .following(before_change)
        .next()
        .map(|t| t.timestamp())
        .ok_or(Bad::Range)?;
    let timestamp = match end {
        DayEnd::Start => change,
        DayEnd::End => just_before(change)?,
    };
    Ok(SnapshotTime::in_zone(timestamp, zone))
}

/// The last instant before `t`: the end bound of what starts at `t`.
fn just_before(t: Timestamp) -> Result<Timestamp, Bad> {
    t.checked_sub(SignedDuration::from_nanos(1))
        .map_err(|_| Bad::Range)
}

/// `timestamp` in `zone` to the second, for tables; with its offset when
/// the clock showed the same time twice, so that the two can be told apart.
pub(super) fn shown(timestamp: Timestamp, zone: &TimeZone) -> String {
    let zoned = timestamp.to_zoned_datetime(zone.clone());
    let civil = zoned.datetime();
    let repeated = matches!(
        zone.to_ambiguous_timestamp(civil).offset(),
        AmbiguousOffset::Fold { .. }
    );
    match repeated {
        true => zoned.strftime("%Y-%m-%d %H:%M:%S%:z").to_string(),
        false => zoned.strftime("%Y-%m-%d %H:%M:%S").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_instant, parse_point};
    use super::*;

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn point(text: &str, tz: &str, end: DayEnd) -> String {
        let now: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        parse_point(text, &zone(tz), now, end).unwrap().to_string()
    }

    #[test]
    fn a_date_whose_midnight_was_skipped_or_repeated_starts_at_its_first_instant() {
        // Havana: 00:00 became 01:00 on 2026-03-08; 01:00 went back to
        // 00:00 on 2026-11-01.
        let havana = zone("America/Havana");
        let spring = parse_instant("2026-03-08", &havana).unwrap();
        assert_eq!(spring.to_string(), "2026-03-08T01:00:00-04:00");
        let autumn = parse_instant("20261101", &havana).unwrap();
        assert_eq!(autumn.to_string(), "2026-11-01T00:00:00-04:00");
        let end = point("2026-10-31", "America/Havana", DayEnd::End);
        assert_eq!(end, "2026-11-01T03:59:59.999999999Z");
    }

    #[test]
    fn a_skipped_day_bounds_a_selection_at_the_change_and_is_no_snapshot_time() {
        // Apia went from 2011-12-29 23:59:59 (-10:00) to 2011-12-31 00:00.
        let end = point("2011-12-30", "Pacific/Apia", DayEnd::End);
        assert_eq!(end, "2011-12-30T09:59:59.999999999Z");
        let start = point("2011-12-30", "Pacific/Apia", DayEnd::Start);
        assert_eq!(start, "2011-12-30T10:00:00Z");
        let later = point("2011-12-31 01:00", "Pacific/Apia", DayEnd::End);
        assert!(later > end);
        let err = parse_instant("2011-12-30", &zone("Pacific/Apia")).unwrap_err();
        assert!(err.contains("skipped the whole day"), "{err}");
    }

    #[test]
    fn a_zone_in_brackets_is_the_zone_of_a_date_and_must_agree_with_an_offset() {
        let tokyo_day = point("2026-02-15[Asia/Tokyo]", "UTC", DayEnd::End);
        assert_eq!(tokyo_day, "2026-02-15T14:59:59.999999999Z");
        let utc = zone("UTC");
        let err = parse_instant("2026-03-29T02:30:00+01:00[Europe/Berlin]", &utc).unwrap_err();
        assert!(err.contains("zone's offset"), "{err}");
        let ok = parse_instant("2026-03-29T03:30:00+02:00[Europe/Berlin]", &utc).unwrap();
        assert_eq!(ok.to_string(), "2026-03-29T03:30:00+02:00");
        let err = parse_instant("2026-03-29 02:30[Europe/Berlin]", &utc).unwrap_err();
        assert!(err.contains("never happened in Europe/Berlin"), "{err}");
    }

    #[test]
    fn every_annotation_is_read_and_z_takes_the_zone_offset() {
        let utc = zone("UTC");
        let berlin = parse_instant("2026-02-15 14:30[Europe/Berlin][u-ca=iso8601]", &utc).unwrap();
        assert_eq!(berlin.to_string(), "2026-02-15T14:30:00+01:00");
        let day = point("2026-02-15[Asia/Tokyo][u-ca=iso8601]", "UTC", DayEnd::End);
        assert_eq!(day, "2026-02-15T14:59:59.999999999Z");
        let zulu = parse_instant("2026-02-15T05:30:00Z[Asia/Tokyo]", &utc).unwrap();
        assert_eq!(zulu.to_string(), "2026-02-15T14:30:00+09:00");
    }

    #[test]
    fn an_offset_with_seconds_is_refused_as_rfc_3339_does() {
        let err = parse_instant("2026-02-15T14:30:00+05:30:15", &zone("UTC")).unwrap_err();
        assert!(err.contains("whole minutes"), "{err}");
    }
}
