//! How a command's work ended, as a value: done, partial (some items left
//! out) or damage found. Errors are the `Err` side of each operation.
//!
//! Each operation's report says which of these it is (`Snapshot::outcome`,
//! `RestoreOutcome::outcome`, `verify::Report::outcome`), so that the
//! binary turns an outcome into an exit code in one place (`cli::exit`)
//! and no command decides it by itself.

/// How the work asked for ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Outcome {
    /// Everything asked for was done.
    #[default]
    Done,
    /// The work was done and committed, but some items are not in it (or
    /// not whole): files left out of a snapshot, files a restore could not
    /// write. `items` counts them; each is named in the operation's report.
    Partial {
        /// How many items.
        items: u64,
    },
    /// Damage was found: by verify, or in a restored database.
    Damage {
        /// How many problems.
        problems: u64,
    },
}

impl Outcome {
    /// `Partial` if `items` is not 0, else `Done`.
    pub fn partial_if(items: u64) -> Self {
        match items {
            0 => Self::Done,
            items => Self::Partial { items },
        }
    }

    /// `Damage` if `problems` is not 0, else `Done`.
    pub fn damage_if(problems: u64) -> Self {
        match problems {
            0 => Self::Done,
            problems => Self::Damage { problems },
        }
    }

    /// The worse of two outcomes: damage over partial over done.
    pub fn worst(self, other: Self) -> Self {
        let rank = |o: &Self| match o {
            Self::Done => 0,
            Self::Partial { .. } => 1,
            Self::Damage { .. } => 2,
        };
        if rank(&other) > rank(&self) {
            other
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_outranks_partial_and_partial_outranks_done() {
        let partial = Outcome::partial_if(2);
        let damage = Outcome::damage_if(1);
        assert_eq!(Outcome::Done.worst(partial.clone()), partial);
        assert_eq!(partial.clone().worst(damage.clone()), damage);
        assert_eq!(damage.clone().worst(partial), damage);
        assert_eq!(Outcome::partial_if(0), Outcome::Done);
    }
}
