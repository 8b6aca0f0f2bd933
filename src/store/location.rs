//! Where a store is: a local directory or a bucket, as the user names it
//! (`--store`, `CAIRN_STORE`).
//!
//! A plain path or `file://PATH` is a local store; `s3://BUCKET/PREFIX` a
//! store in S3-compatible object storage. Any other `SCHEME://` is refused
//! with the list of supported ones: a typo must never silently become a
//! local directory called `s3:`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::backend::S3Url;
use crate::rawname::escaped;

/// A store's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory on this machine.
    Local(PathBuf),
    /// A bucket (and key prefix) in S3-compatible object storage.
    S3(S3Url),
}

/// A `--store` value that names no store cairn can reach.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LocationError {
    /// A scheme cairn does not support.
    #[error(
        "unsupported store location {text:?} (scheme {scheme:?}): use a directory, file://PATH or s3://BUCKET/PREFIX"
    )]
    Scheme {
        /// What was given.
        text: String,
        /// Its scheme.
        scheme: String,
    },
    /// A supported scheme with a malformed rest.
    #[error("bad store location {text:?}: {why}")]
    Malformed {
        /// What was given.
        text: String,
        /// What is wrong.
        why: &'static str,
    },
}

impl Location {
    /// The local directory, for a local store.
    pub fn local_path(&self) -> Option<&PathBuf> {
        match self {
            Location::Local(path) => Some(path),
            Location::S3(_) => None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", escaped(path)),
            Location::S3(url) => f.write_str(&url.display()),
        }
    }
}

impl FromStr for Location {
    type Err = LocationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((scheme, rest)) = split_scheme(text) else {
            return Ok(Location::Local(PathBuf::from(text)));
        };
        let malformed = |why| LocationError::Malformed {
            text: text.to_owned(),
            why,
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" if rest.starts_with('/') => Ok(Location::Local(PathBuf::from(rest))),
            "file" => Err(malformed("a file:// location needs an absolute path")),
            "s3" => s3_url(rest).map(Location::S3).ok_or_else(|| {
                malformed("expected s3://BUCKET or s3://BUCKET/PREFIX with a valid bucket name")
            }),
            _ => Err(LocationError::Scheme {
                text: text.to_owned(),
                scheme: scheme.to_owned(),
            }),
        }
    }
}

/// `SCHEME` and what follows `SCHEME://`, if `text` is a URL.
fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    valid.then_some((scheme, rest))
}

/// `BUCKET[/PREFIX]`, with a bucket name S3 accepts (3-63 characters of
/// lowercase letters, digits, `-` and `.`).
fn s3_url(rest: &str) -> Option<S3Url> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let prefix = prefix.trim_matches('/');
    let clean_prefix = !prefix
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
        && !prefix.chars().any(|c| c.is_ascii_control());
    (valid_bucket && (prefix.is_empty() || clean_prefix)).then(|| S3Url {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Location, LocationError> {
        text.parse()
    }

    #[test]
    fn paths_and_file_urls_are_local_stores() {
        assert_eq!(
            parse("/srv/backup"),
            Ok(Location::Local("/srv/backup".into()))
        );
        assert_eq!(parse("rel/dir"), Ok(Location::Local("rel/dir".into())));
        assert_eq!(parse("file:///srv/b"), Ok(Location::Local("/srv/b".into())));
        assert_eq!(
            parse("weird:name"),
            Ok(Location::Local("weird:name".into()))
        );
        assert!(parse("file://relative").is_err());
    }

    #[test]
    fn s3_urls_name_a_bucket_and_a_prefix() {
        let url = |bucket: &str, prefix: &str| {
            Ok(Location::S3(S3Url {
                bucket: bucket.into(),
                prefix: prefix.into(),
            }))
        };
        assert_eq!(parse("s3://backups/app"), url("backups", "app"));
        assert_eq!(parse("s3://backups/a/b/"), url("backups", "a/b"));
        assert_eq!(parse("s3://backups"), url("backups", ""));
        assert!(parse("s3://Bad_Bucket/x").is_err());
        assert!(parse("s3://ok-bucket/a//b").is_err());
        assert!(parse("s3://ok-bucket/../b").is_err());
        // No S3 path holds a control character.
        assert!(parse("s3://bucket/a\tb").is_err());
        assert_eq!(parse("s3://bucket/~a/été #1"), url("bucket", "~a/été #1"));
    }

    #[test]
    fn unknown_schemes_are_refused_naming_the_supported_ones() {
        let err = parse("sftp://host/dir").unwrap_err();
        assert!(matches!(err, LocationError::Scheme { .. }));
        assert!(err.to_string().contains("s3://BUCKET"), "{err}");
        assert!(parse("gs://bucket/x").is_err());
        assert!(parse("S3x://b").is_err());
    }
}
