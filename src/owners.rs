//! User and group names, from the host's `/etc/passwd` and `/etc/group`.
//!
//! A snapshot records the owner's name beside its id, and a restore on
//! another host gives a file the id that name has there (as tar and rsync
//! do): uid 1000 is "alice" on one machine and "bob" on the next. `ls -l`
//! shows the recorded name, or for a record without one (format 3 and
//! older) this machine's name for the id, only a reading aid. The
//! files are read directly with std (once per run, then looked up in
//! memory) rather than through the C library's `getpwuid`, which would
//! need unsafe code; so accounts that only a name service such as LDAP or
//! sssd knows have no name here, and keep their numeric id.

use std::collections::HashMap;
use std::path::Path;

use crate::rawname::RawName;

/// Where the host's accounts are.
const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

/// The names and ids of one kind of account (users or groups).
#[derive(Debug, Default)]
struct Table {
    by_id: HashMap<u32, RawName>,
    by_name: HashMap<RawName, u32>,
}

impl Table {
    /// Reads `name:password:id:...` lines; the first line for an id or a
    /// name wins, as it does for the C library's lookups. Lines that are
    /// not of that form (comments, NIS `+` entries) are passed over.
    fn parse(text: &[u8]) -> Self {
        let mut table = Self::default();
        for line in text.split(|&b| b == b'\n') {
            let mut fields = line.split(|&b| b == b':');
            let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let id = std::str::from_utf8(id).ok().and_then(|s| s.parse().ok());
            let usable = !name.is_empty() && !matches!(name[0], b'+' | b'-' | b'#');
            if let (Some(id), true) = (id, usable) {
                let name = RawName::from_bytes(name.to_vec());
                table.by_id.entry(id).or_insert_with(|| name.clone());
                table.by_name.entry(name).or_insert(id);
            }
        }
        table
    }

    fn read(path: &Path) -> Self {
        // A host without the file (a minimal container) has no names.
        std::fs::read(path).map_or_else(|_| Self::default(), |text| Self::parse(&text))
    }
}

/// The accounts of a host: user and group names by id and ids by name.
#[derive(Debug, Default)]
pub struct Accounts {
    users: Table,
    groups: Table,
}

impl Accounts {
    /// The accounts of the host this runs on.
    pub fn of_host() -> Self {
        Self {
            users: Table::read(Path::new(PASSWD)),
            groups: Table::read(Path::new(GROUP)),
        }
    }

    /// Accounts from the text of a passwd and a group file.
    pub fn parse(passwd: &[u8], group: &[u8]) -> Self {
        Self {
            users: Table::parse(passwd),
            groups: Table::parse(group),
        }
    }

    /// The name of user `uid`, if it has one.
    pub fn user_name(&self, uid: u32) -> Option<&RawName> {
        self.users.by_id.get(&uid)
    }

    /// The name of group `gid`, if it has one.
    pub fn group_name(&self, gid: u32) -> Option<&RawName> {
        self.groups.by_id.get(&gid)
    }

    /// The id of the user called `name`, if there is one.
    pub fn uid_of(&self, name: &RawName) -> Option<u32> {
        self.users.by_name.get(name).copied()
    }

    /// The id of the group called `name`, if there is one.
    pub fn gid_of(&self, name: &RawName) -> Option<u32> {
        self.groups.by_name.get(name).copied()
    }

    /// How `ls -l` shows an owner: the `recorded` name, else this host's
    /// name for `uid`, else the number.
    pub fn show_user(&self, recorded: Option<&RawName>, uid: u32) -> String {
        shown(recorded.or_else(|| self.user_name(uid)), uid)
    }

    /// How `ls -l` shows a group, as [`Accounts::show_user`] an owner.
    pub fn show_group(&self, recorded: Option<&RawName>, gid: u32) -> String {
        shown(recorded.or_else(|| self.group_name(gid)), gid)
    }
}

/// A name as text, or the id when there is none (or it would not print
/// as one word in a column).
fn shown(name: Option<&RawName>, id: u32) -> String {
    let text = name.map(ToString::to_string).unwrap_or_default();
    let printable = !text.is_empty() && text.chars().all(|c| c.is_ascii_graphic());
    if printable { text } else { id.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> RawName {
        RawName::from_bytes(s.as_bytes().to_vec())
    }

    #[test]
    fn names_and_ids_are_looked_up_both_ways_and_the_first_line_wins() {
        let passwd = b"root:x:0:0:root:/root:/bin/bash\n# comment\n+nis::::::\nalice:x:1000:1000::/home/alice:/bin/sh\ntoor:x:0:0::/:/bin/sh\nbad:x:notanumber:0::/:\n\n";
        let group = b"root:x:0:\nstaff:x:50:alice,bob\nno-id\n";
        let accounts = Accounts::parse(passwd, group);
        assert_eq!(accounts.user_name(0), Some(&name("root")));
        assert_eq!(accounts.uid_of(&name("toor")), Some(0));
        assert_eq!(accounts.uid_of(&name("alice")), Some(1000));
        assert_eq!(accounts.uid_of(&name("bad")), None);
        assert_eq!(accounts.uid_of(&name("+nis")), None);
        assert_eq!(accounts.user_name(1001), None);
        assert_eq!(accounts.group_name(50), Some(&name("staff")));
        assert_eq!(accounts.gid_of(&name("no-id")), None);
    }

    #[test]
    fn ls_shows_the_recorded_name_then_the_hosts_then_the_number() {
        let accounts = Accounts::parse(b"root:x:0:0::/:/bin/sh\n", b"wheel:x:10:\n");
        assert_eq!(accounts.show_user(Some(&name("alice")), 0), "alice");
        assert_eq!(accounts.show_user(None, 0), "root");
        assert_eq!(accounts.show_user(None, 1000), "1000");
        assert_eq!(accounts.show_group(None, 10), "wheel");
        assert_eq!(accounts.show_group(Some(&name("two words")), 10), "10");
    }
}
