//! What a retention policy says, and how snapshots are grouped before it
//! applies: the values behind `--keep-*` and `--group-by`, and their saved
//! form in `config.json`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::within::Within;

/// How many buckets of one kind to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Count {
    /// The N most recent buckets that hold a snapshot.
    Limited(u32),
    /// Every bucket.
    Unlimited,
}

impl Count {
    /// `None` for zero: `--keep-daily 0` keeps nothing daily, as if unset.
    fn nonzero(self) -> Option<Self> {
        (self != Self::Limited(0)).then_some(self)
    }
}

impl FromStr for Count {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "unlimited" {
            return Ok(Self::Unlimited);
        }
        text.parse()
            .map(Self::Limited)
            .map_err(|_| format!("{text:?} is not a count: give a number or `unlimited`"))
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Limited(n) => write!(f, "{n}"),
            Self::Unlimited => f.write_str("unlimited"),
        }
    }
}

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Limited(n) => s.serialize_u32(*n),
            Self::Unlimited => s.serialize_str("unlimited"),
        }
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u32),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Self::Limited(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// The calendar (or sequence) buckets a snapshot falls into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// Every snapshot is its own bucket (`--keep-last`).
    Last,
    /// Local calendar hour.
    Hourly,
    /// Local calendar day.
    Daily,
    /// ISO 8601 week.
    Weekly,
    /// Local calendar month.
    Monthly,
    /// Local calendar year.
    Yearly,
}

impl Period {
    /// All of them, finest first, in the order restic evaluates them.
    pub const ALL: [Self; 6] = [
        Self::Last,
        Self::Hourly,
        Self::Daily,
        Self::Weekly,
        Self::Monthly,
        Self::Yearly,
    ];

    /// `daily`, `weekly`, ...
    pub fn name(self) -> &'static str {
        match self {
            Self::Last => "last",
            Self::Hourly => "hourly",
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::Yearly => "yearly",
        }
    }
}

/// A retention policy: which snapshots of a group to keep. A snapshot is
/// kept if any rule keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// `--keep-last`.
    #[serde(rename = "keep_last", skip_serializing_if = "Option::is_none")]
    pub last: Option<Count>,
    /// `--keep-hourly`.
    #[serde(rename = "keep_hourly", skip_serializing_if = "Option::is_none")]
    pub hourly: Option<Count>,
    /// `--keep-daily`.
    #[serde(rename = "keep_daily", skip_serializing_if = "Option::is_none")]
    pub daily: Option<Count>,
    /// `--keep-weekly`.
    #[serde(rename = "keep_weekly", skip_serializing_if = "Option::is_none")]
    pub weekly: Option<Count>,
    /// `--keep-monthly`.
    #[serde(rename = "keep_monthly", skip_serializing_if = "Option::is_none")]
    pub monthly: Option<Count>,
    /// `--keep-yearly`.
    #[serde(rename = "keep_yearly", skip_serializing_if = "Option::is_none")]
    pub yearly: Option<Count>,
    /// `--keep-within`: everything newer than this before the group's newest.
    #[serde(rename = "keep_within", skip_serializing_if = "Option::is_none")]
    pub within: Option<Within>,
    /// `--keep-within-hourly`.
    #[serde(rename = "keep_within_hourly", skip_serializing_if = "Option::is_none")]
    pub within_hourly: Option<Within>,
    /// `--keep-within-daily`.
    #[serde(rename = "keep_within_daily", skip_serializing_if = "Option::is_none")]
    pub within_daily: Option<Within>,
    /// `--keep-within-weekly`.
    #[serde(rename = "keep_within_weekly", skip_serializing_if = "Option::is_none")]
    pub within_weekly: Option<Within>,
    /// `--keep-within-monthly`.
    #[serde(
        rename = "keep_within_monthly",
        skip_serializing_if = "Option::is_none"
    )]
    pub within_monthly: Option<Within>,
    /// `--keep-within-yearly`.
    #[serde(rename = "keep_within_yearly", skip_serializing_if = "Option::is_none")]
    pub within_yearly: Option<Within>,
    /// `--keep-tag`: each entry is a comma-separated list of tags a snapshot
    /// must all carry to be kept.
    #[serde(rename = "keep_tags", skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl Policy {
    /// The bucket count for `period`, if the policy uses it.
    pub fn count(&self, period: Period) -> Option<Count> {
        let count = match period {
            Period::Last => self.last,
            Period::Hourly => self.hourly,
            Period::Daily => self.daily,
            Period::Weekly => self.weekly,
            Period::Monthly => self.monthly,
            Period::Yearly => self.yearly,
        };
        count.and_then(Count::nonzero)
    }

    /// The `--keep-within-PERIOD` span, if set (there is none for `last`).
    pub fn within_period(&self, period: Period) -> Option<Within> {
        match period {
            Period::Last => None,
            Period::Hourly => self.within_hourly,
            Period::Daily => self.within_daily,
            Period::Weekly => self.within_weekly,
            Period::Monthly => self.within_monthly,
            Period::Yearly => self.within_yearly,
        }
    }

    /// Whether the policy keeps nothing by itself. Applying such a policy
    /// would forget every snapshot but the newest, so it is refused.
    pub fn is_empty(&self) -> bool {
        Period::ALL.iter().all(|&p| self.count(p).is_none())
            && Period::ALL.iter().all(|&p| self.within_period(p).is_none())
            && self.within.is_none()
            && self.tag_sets().next().is_none()
    }

    /// The `--keep-tag` entries as tag lists, split at commas and trimmed,
    /// as restic reads them: an empty tag (`--keep-tag ''`) matches
    /// snapshots without tags.
    pub fn tag_sets(&self) -> impl Iterator<Item = Vec<&str>> {
        self.tags
            .iter()
            .map(|t| t.split(',').map(str::trim).collect::<Vec<_>>())
    }
}

impl fmt::Display for Policy {
    /// The policy as the flags that give it, e.g. `--keep-daily 7 --keep-weekly 4`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for period in Period::ALL {
            if let Some(count) = self.count(period) {
                parts.push(format!("--keep-{} {count}", period.name()));
            }
        }
        if let Some(w) = self.within {
            parts.push(format!("--keep-within {w}"));
        }
        for period in Period::ALL {
            if let Some(w) = self.within_period(period) {
                parts.push(format!("--keep-within-{} {w}", period.name()));
            }
        }
        for tag in &self.tags {
            parts.push(format!("--keep-tag {tag}"));
        }
        f.write_str(&parts.join(" "))
    }
}

/// Which record fields put snapshots in the same group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupBy {
    /// Same host.
    pub host: bool,
    /// Same source paths.
    pub paths: bool,
    /// Same tags.
    pub tags: bool,
}

impl Default for GroupBy {
    /// Host and paths, as restic.
    fn default() -> Self {
        Self {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl FromStr for GroupBy {
    type Err = String;

    /// A comma-separated subset of `host,paths,tags`; empty for one group.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut out = Self {
            host: false,
            paths: false,
            tags: false,
        };
        for field in text.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            match field {
                "host" => out.host = true,
                "paths" => out.paths = true,
                "tags" => out.tags = true,
                _ => {
                    return Err(format!(
                        "cannot group by {field:?}: use a comma-separated subset of host,paths,tags (or \"\" for one group)"
                    ));
                }
            }
        }
        Ok(out)
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields = [
            (self.host, "host"),
            (self.paths, "paths"),
            (self.tags, "tags"),
        ];
        let names: Vec<&str> = fields
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        f.write_str(&names.join(","))
    }
}

impl Serialize for GroupBy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GroupBy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A policy saved in the store (`cairn policy set`), used by `cairn forget`
/// when no `--keep-*` flag is given.
///
/// Unknown fields are refused rather than ignored: a rule added by a newer
/// cairn that this one skipped would make it forget more than was asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPolicy {
    /// The rules.
    pub policy: Policy,
    /// The grouping.
    #[serde(default)]
    pub group_by: GroupBy,
}
