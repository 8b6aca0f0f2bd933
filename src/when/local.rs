//! Local clock times, which name no instant or two of them around a change
//! of offset: in Europe/Berlin, 2026-03-29 02:30 never happened (the clocks
//! went from 02:00 to 03:00) and 2026-10-25 02:30 happened twice.
//!
//! A time for a snapshot's record must be one instant: such a time is
//! refused, with what to give instead. A time that bounds a selection is
//! read so that the order of the clock is kept: jiff's usual rule moved a
//! skipped 02:30 to 03:30, and `@02:30` then chose a snapshot taken after
//! `@03:00` did.

use jiff::civil::DateTime;
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
            "{text:?} never happened here: the clocks went forward then (from UTC{before} \
             to UTC{after}); give the time with its offset"
        ))),
        (AmbiguousOffset::Fold { before, after }, Local::Exact) => {
            Err(twice(text, civil, before, after))
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
fn twice(text: &str, civil: DateTime, before: Offset, after: Offset) -> Bad {
    let with = |offset| at(civil, offset).map_or_else(|_| String::new(), |t| t.to_string());
    Bad::Clock(format!(
        "{text:?} happened twice here (the clocks went back from UTC{before} to \
         UTC{after}); give the one meant with its offset: {} or {}",
        with(before),
        with(after)
    ))
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
        DayEnd::End => change
            .checked_sub(SignedDuration::from_nanos(1))
            .map_err(|_| Bad::Range)?,
    };
    Ok(SnapshotTime::in_zone(timestamp, zone))
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
