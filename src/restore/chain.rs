//! The open directories from the target down to where a restore's walk is.
//!
//! The walk meets each directory right before its contents (pre-order), so
//! the directories above the entry at hand are exactly those it entered and
//! has not left. Keeping their handles open lets every entry be reached
//! relative to its parent's handle by its own name: no path is resolved
//! whole, whatever its length (see `target`). When the walk moves on to an
//! entry outside a directory, that directory is left, innermost first, and
//! its handle and data handed back: all its contents have been met by then,
//! which is when a restore may set its metadata.

use std::ffi::OsString;
use std::io;
use std::path::Path;

use super::target::DirFd;

/// The chain of open directories, each with what its user keeps about it.
pub(super) struct Chain<T> {
    root: Option<DirFd>,
    levels: Vec<Level<T>>,
}

struct Level<T> {
    name: OsString,
    /// `None` for a directory that does not exist (a survey looks into
    /// target directories only where there are some).
    fd: Option<DirFd>,
    data: T,
}

impl<T> Chain<T> {
    /// A chain holding only `root` (the target; `None` if it is missing).
    pub fn new(root: Option<DirFd>) -> Self {
        Self {
            root,
            levels: Vec::new(),
        }
    }

    /// Leaves every directory that is not above `rel` (relative to the
    /// target), innermost first, handing each one's handle and data to
    /// `left`. Afterwards the innermost directory is `rel`'s parent.
    pub fn move_to(
        &mut self,
        rel: &Path,
        mut left: impl FnMut(Option<DirFd>, T),
    ) -> io::Result<()> {
        let above: Vec<_> = rel
            .parent()
            .map(Path::components)
            .into_iter()
            .flatten()
            .collect();
        let kept = self
            .levels
            .iter()
            .zip(&above)
            .take_while(|(level, c)| level.name == c.as_os_str())
            .count();
        self.leave_below(kept, &mut left);
        if kept != above.len() {
            let why = format!(
                "{}: its directory was not entered first",
                crate::rawname::escaped(rel)
            );
            return Err(io::Error::other(why));
        }
        Ok(())
    }

    /// The handle of the innermost directory (`None` if it does not exist).
    pub fn parent(&self) -> Option<&DirFd> {
        match self.levels.last() {
            Some(level) => level.fd.as_ref(),
            None => self.root.as_ref(),
        }
    }

    /// Enters directory `name` of the innermost one.
    pub fn enter(&mut self, name: OsString, fd: Option<DirFd>, data: T) {
        self.levels.push(Level { name, fd, data });
    }

    /// Leaves every directory, innermost first (the walk is over).
    pub fn leave_all(&mut self, mut left: impl FnMut(Option<DirFd>, T)) {
        self.leave_below(0, &mut left);
    }

    fn leave_below(&mut self, depth: usize, left: &mut impl FnMut(Option<DirFd>, T)) {
        while self.levels.len() > depth {
            if let Some(level) = self.levels.pop() {
                left(level.fd, level.data);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaving(chain: &mut Chain<&'static str>, rel: &str) -> Vec<&'static str> {
        let mut left = Vec::new();
        chain.move_to(Path::new(rel), |_, d| left.push(d)).unwrap();
        left
    }

    #[test]
    fn directories_are_left_innermost_first_once_the_walk_is_past_them() {
        let mut chain = Chain::new(None);
        assert!(leaving(&mut chain, "a").is_empty());
        chain.enter("a".into(), None, "a");
        assert!(leaving(&mut chain, "a/b").is_empty());
        chain.enter("b".into(), None, "a/b");
        assert!(leaving(&mut chain, "a/b/f").is_empty());
        assert_eq!(leaving(&mut chain, "a/g"), ["a/b"]);
        chain.enter("c".into(), None, "a/c");
        assert_eq!(leaving(&mut chain, "z"), ["a/c", "a"]);
        let mut rest = Vec::new();
        chain.leave_all(|_, d| rest.push(d));
        assert!(rest.is_empty());
    }

    #[test]
    fn an_entry_whose_directory_was_not_entered_is_an_error() {
        let mut chain: Chain<()> = Chain::new(None);
        chain.enter("a".into(), None, ());
        assert!(chain.move_to(Path::new("b/c"), |_, ()| {}).is_err());
    }
}
