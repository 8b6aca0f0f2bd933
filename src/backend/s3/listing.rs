//! Listing a store's objects: page by page, each page asked for again when
//! its answer was lost, and a server whose pages would never end told.

use std::collections::HashSet;
use std::io;
use std::time::SystemTime;

use object_store::list::{PaginatedListOptions, PaginatedListResult, PaginatedListStore};

use super::failure::{failure, looping, page_lost};
use super::{LIST_PAGE, S3, literal};
use crate::backend::ObjectInfo;

impl S3 {
    /// Every object whose key starts with `prefix`, sorted by key.
    pub fn list(&self, prefix: &str) -> io::Result<Vec<ObjectInfo>> {
        let path = self.path(prefix.trim_end_matches('/'));
        let under = (!path.as_ref().is_empty()).then(|| format!("{}/", path.as_ref()));
        let mut found = Vec::new();
        let mut token = None;
        let mut given = HashSet::new();
        loop {
            let options = PaginatedListOptions {
                page_token: token.take(),
                ..PaginatedListOptions::default()
            };
            let page = self.page(under.as_deref(), options, prefix)?;
            found.extend(page.result.objects);
            match page.page_token {
                None => break,
                Some(next) if !given.insert(next.clone()) => return Err(looping(prefix, &next)),
                Some(next) => token = Some(next),
            }
        }
        let mut out: Vec<ObjectInfo> = found
            .into_iter()
            .map(|m| ObjectInfo {
                key: self.key_of(&m.location),
                size: m.size,
                modified: Some(SystemTime::from(m.last_modified)),
            })
            .filter(|o| o.key.starts_with(prefix))
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The objects directly under the store's prefix and the names of the
    /// "directories" below it: the first page of one LIST with a delimiter
    /// (up to 1000 of them; a store has a handful, and for a prefix that is
    /// no store the first page tells). A zero-byte object named like the
    /// prefix itself is the "folder" a console makes, not an object.
    pub fn top_level(&self) -> io::Result<(Vec<ObjectInfo>, Vec<String>)> {
        let folder = literal(&self.url.prefix);
        let prefix = (!self.url.prefix.is_empty()).then(|| format!("{}/", folder.as_ref()));
        let options = PaginatedListOptions {
            delimiter: Some("/".into()),
            ..PaginatedListOptions::default()
        };
        let page = self.page(prefix.as_deref(), options, "/")?;
        let objects = (page.result.objects.into_iter())
            .filter(|m| !(m.size == 0 && m.location == folder))
            .map(|m| ObjectInfo {
                key: self.key_of(&m.location),
                size: m.size,
                modified: Some(SystemTime::from(m.last_modified)),
            });
        let dirs = page.result.common_prefixes.iter().map(|p| self.key_of(p));
        Ok((objects.collect(), dirs.collect()))
    }

    /// One page of up to [`LIST_PAGE`] keys under `prefix` (`what` names it
    /// in an error), asked for again when its body was cut off.
    fn page(
        &self,
        prefix: Option<&str>,
        options: PaginatedListOptions,
        what: &str,
    ) -> io::Result<PaginatedListResult> {
        let options = PaginatedListOptions {
            max_keys: Some(LIST_PAGE as usize),
            ..options
        };
        let attempt = || {
            self.counters.add_requests(&self.counters.lists, 1);
            self.run(self.client.list_paginated(prefix, options.clone()))
        };
        self.resending(page_lost, attempt)
            .map_err(|e| failure("LIST", what, &e))
    }
}
