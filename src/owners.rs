//! User and group names for numeric owners, as `ls -l` shows them: from
//! this machine's `/etc/passwd` and `/etc/group` (the files, not NSS: a
//! snapshot's owners are numbers, and a name is only a reading aid, shown
//! where this machine knows one).

use std::collections::HashMap;
use std::path::Path;

/// Names by id, read once.
#[derive(Debug, Default)]
pub struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    /// The names of this machine's `/etc/passwd` and `/etc/group` (none if
    /// they cannot be read).
    pub fn load() -> Self {
        Self {
            users: read(Path::new("/etc/passwd")),
            groups: read(Path::new("/etc/group")),
        }
    }

    /// The user's name, or the number.
    pub fn user(&self, uid: u32) -> String {
        self.users
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }

    /// The group's name, or the number.
    pub fn group(&self, gid: u32) -> String {
        self.groups
            .get(&gid)
            .cloned()
            .unwrap_or_else(|| gid.to_string())
    }
}

/// `name:x:id:...` lines: id -> name (the first name of an id wins).
fn read(path: &Path) -> HashMap<u32, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    parse(&text)
}

fn parse(text: &str) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let printable = !name.is_empty() && name.chars().all(|c| c.is_ascii_graphic());
        if let (true, Ok(id)) = (printable, id.parse::<u32>()) {
            names.entry(id).or_insert_with(|| name.to_owned());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_to_their_first_name_and_odd_lines_are_skipped() {
        let names = parse(
            "root:x:0:0:root:/root:/bin/sh\n#comment\nbad\nalias:x:0:0\nann:x:1000:1000::/home/ann:/bin/sh\n",
        );
        assert_eq!(names.get(&0).map(String::as_str), Some("root"));
        assert_eq!(names.get(&1000).map(String::as_str), Some("ann"));
        assert_eq!(names.len(), 2);
    }
}
