//! Calendar durations for `--keep-within`: `30d`, `2w`, `1y6m`, `12h`.
//!
//! They are calendar spans, not fixed lengths: "1m" back from March 31 lands
//! on the day Go's `AddDate` would (restic's arithmetic, which cairn follows
//! exactly), so `1y` always reaches the same date a year earlier. Like
//! restic, the calendar is the local time zone's when the newest snapshot
//! was taken in it (so counting back across a DST change keeps the wall
//! clock), else the snapshot's own fixed offset.

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, DateTime};
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Span, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A span of years, months, weeks, days and hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Within {
    /// Years back.
    pub years: u32,
    /// Months back.
    pub months: u32,
    /// Weeks back (7 days each).
    pub weeks: u32,
    /// Days back.
    pub days: u32,
    /// Hours back (absolute hours, after the calendar part).
    pub hours: u32,
}

/// Largest number accepted for any unit: beyond it the arithmetic leaves
/// the range of dates anyway.
const MAX_UNIT: u32 = 100_000;

impl Within {
    /// Whether it spans nothing.
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// The instant this span before `newest` (recorded with `offset`):
    /// years, months and days are calendar steps with overflow carried
    /// forward (Feb 31 is Mar 3) on the wall clock of `zone` if `newest` was
    /// taken in it, else of `offset`; hours are subtracted afterwards.
    /// `None` if that falls outside the representable dates, which means
    /// "before everything".
    pub fn before(&self, newest: Timestamp, offset: Offset, zone: &TimeZone) -> Option<Timestamp> {
        let zone = if zone.to_offset(newest) == offset {
            zone.clone()
        } else {
            TimeZone::fixed(offset)
        };
        let wall = zone.to_datetime(newest);
        let months = i64::from(wall.year()) * 12 + i64::from(wall.month() - 1)
            - i64::from(self.years) * 12
            - i64::from(self.months);
        let year = i16::try_from(months.div_euclid(12)).ok()?;
        let month = i8::try_from(months.rem_euclid(12) + 1).ok()?;
        let first = Date::new(year, month, 1).ok()?;
        let back_days = i64::from(self.weeks) * 7 + i64::from(self.days);
        let day = first
            .checked_add(Span::new().days(i64::from(wall.day()) - 1 - back_days))
            .ok()?;
        let local = DateTime::from_parts(day, wall.time());
        let start = zone.to_timestamp(local).ok()?;
        start
            .checked_sub(SignedDuration::from_hours(i64::from(self.hours)))
            .ok()
    }
}

impl FromStr for Within {
    type Err = String;

    /// Parses `NyNmNwNdNh` with any subset of the units in that order.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("{text:?} is not a duration ({why}); write e.g. 30d, 2w, 1y6m or 12h")
        };
        let mut out = Self::default();
        let mut digits = String::new();
        let mut last_unit = 0;
        for c in text.trim().chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let (rank, slot) = match c {
                'y' => (1, &mut out.years),
                'm' => (2, &mut out.months),
                'w' => (3, &mut out.weeks),
                'd' => (4, &mut out.days),
                'h' => (5, &mut out.hours),
                _ => return Err(bad(&format!("unknown unit {c:?}"))),
            };
            if rank <= last_unit {
                return Err(bad("units must appear once each, in the order y m w d h"));
            }
            let n: u32 = digits
                .parse()
                .map_err(|_| bad("a number must precede each unit"))?;
            if n > MAX_UNIT {
                return Err(bad("number too large"));
            }
            *slot = n;
            last_unit = rank;
            digits.clear();
        }
        if !digits.is_empty() {
            return Err(bad("a number without a unit"));
        }
        if out.is_zero() {
            return Err(bad("it spans nothing"));
        }
        Ok(out)
    }
}

impl fmt::Display for Within {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.weeks, 'w'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ];
        for (n, unit) in parts {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for Within {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Within {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn back(within: &str, from: &str) -> String {
        let w: Within = within.parse().unwrap();
        let t: crate::when::SnapshotTime = from.parse().unwrap();
        let start = w.before(t.timestamp, t.offset, &TimeZone::UTC).unwrap();
        start.display_with_offset(t.offset).to_string()
    }

    #[test]
    fn units_parse_in_order_and_display_back() {
        let w: Within = "1y6m2w3d4h".parse().unwrap();
        assert_eq!(
            w,
            Within {
                years: 1,
                months: 6,
                weeks: 2,
                days: 3,
                hours: 4
            }
        );
        assert_eq!(w.to_string(), "1y6m2w3d4h");
        assert_eq!("30d".parse::<Within>().unwrap().to_string(), "30d");
    }

    #[test]
    fn malformed_durations_are_refused_with_the_accepted_forms() {
        for text in ["", "0d", "d", "5", "3x", "1d1y", "2d3d", "99999999d"] {
            let err = text.parse::<Within>().unwrap_err();
            assert!(err.contains("30d"), "{text}: {err}");
        }
    }

    #[test]
    fn months_back_overflow_the_way_go_adddate_does() {
        // March 31 minus one month is "February 31", which is March 3.
        assert_eq!(
            back("1m", "2026-03-31T12:00:00+00:00"),
            "2026-03-03T12:00:00+00:00"
        );
        assert_eq!(
            back("1y", "2028-02-29T00:00:00+01:00"),
            "2027-03-01T00:00:00+01:00"
        );
    }

    #[test]
    fn in_the_local_zone_months_back_keep_the_wall_clock_across_dst() {
        let berlin = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let w: Within = "2m".parse().unwrap();
        let t: crate::when::SnapshotTime = "2021-11-01T12:00:00+01:00".parse().unwrap();
        let start = w.before(t.timestamp, t.offset, &berlin).unwrap();
        assert_eq!(start.to_string(), "2021-09-01T10:00:00Z");
        // Taken elsewhere: the snapshot's own offset.
        let start = w.before(t.timestamp, t.offset, &TimeZone::UTC).unwrap();
        assert_eq!(start.to_string(), "2021-09-01T11:00:00Z");
    }

    #[test]
    fn weeks_days_and_hours_count_back_on_the_recorded_wall_clock() {
        assert_eq!(
            back("2w", "2026-01-10T02:00:00+01:00"),
            "2025-12-27T02:00:00+01:00"
        );
        assert_eq!(
            back("1d12h", "2026-03-01T06:00:00-05:00"),
            "2026-02-27T18:00:00-05:00"
        );
    }
}
