//! SQLite reading a source database through the directory the walk holds
//! open, never by a path someone else can redirect.
//!
//! SQLite opens a database, its `-wal`, `-shm` and `-journal` by path. Run
//! by root over a directory another user controls, a path is an attack
//! surface: the user swaps a directory for a symlink between the walk's
//! open and SQLite's, and root reads (and stores under the user's name) a
//! database the user may not read, or creates side files owned by the user
//! in a directory of root's. So the database is named to SQLite as
//! `/proc/self/fd/DIR/NAME`, where `DIR` is a descriptor of the directory
//! the walk opened and checked: the kernel resolves that prefix to the
//! directory object itself, and every side file is found beside the real
//! database. Three hooks make that hold:
//!
//! - a VFS (`cairn-pinned`), the system's `unix` VFS with one change: it
//!   does not resolve symlinks in the names it is given (the `unix` VFS
//!   would turn `/proc/self/fd/DIR` back into a path);
//! - SQLite's `open` system call, wrapped: under a pinned directory it never
//!   creates a file (no side file is ever left in a source), the database
//!   itself must be the very file the walk opened (device and inode,
//!   checked before SQLite reads a byte of it), and a side file must be a
//!   regular file with one link (never a hard link to someone else's file);
//! - SQLite's `geteuid`, wrapped: right after opening a pinned file SQLite
//!   is told it is not root, so it never hands a side file to another owner.
//!
//! This is the crate's only `unsafe` code: SQLite's extension points are C
//! function pointers. Each block says why it is sound.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::ffi::{CStr, OsStr, c_char, c_int};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rusqlite::ffi;

/// The name of the VFS to open pinned paths with.
pub const VFS: &str = "cairn-pinned";
const VFS_C: &CStr = c"cairn-pinned";
/// Every pinned path starts with this.
const PREFIX: &[u8] = b"/proc/self/fd/";

type OpenFn = unsafe extern "C" fn(*const c_char, c_int, c_int) -> c_int;
type FullPathnameFn =
    unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *const c_char, c_int, *mut c_char) -> c_int;

/// What [`install`] found of the `unix` VFS, to delegate to.
struct Unix {
    vfs: *mut ffi::sqlite3_vfs,
    open: OpenFn,
    full_pathname: FullPathnameFn,
}

// SAFETY: `vfs` points to SQLite's static `unix` VFS object, which lives
// for the whole process and is only read through here.
unsafe impl Send for Unix {}
unsafe impl Sync for Unix {}

static UNIX: OnceLock<Result<Unix, String>> = OnceLock::new();

/// Directories pinned now, with what SQLite may open below them.
static PINS: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

thread_local! {
    /// Whether this thread's last SQLite `open` was below a pinned directory
    /// (SQLite asks `geteuid` right after opening a side file).
    static LAST_OPEN_PINNED: Cell<bool> = const { Cell::new(false) };
}

struct Entry {
    /// `/proc/self/fd/DIR/`.
    prefix: Vec<u8>,
    /// `/proc/self/fd/DIR/NAME`: the database.
    main: Vec<u8>,
    dev: u64,
    ino: u64,
    replaced: Arc<AtomicBool>,
}

/// Registers the VFS and the system call hooks, once per process. Call it
/// before other threads use SQLite: the hooks replace entries of SQLite's
/// global system call table.
pub fn install() -> Result<(), String> {
    match UNIX.get_or_init(install_once) {
        Ok(_) => Ok(()),
        Err(e) => Err(e.clone()),
    }
}

fn install_once() -> Result<Unix, String> {
    // SAFETY: sqlite3_vfs_find initialises SQLite if needed and returns
    // its static VFS object or null, which is checked.
    let unix = unsafe { ffi::sqlite3_vfs_find(c"unix".as_ptr()) };
    if unix.is_null() {
        return Err("SQLite has no \"unix\" VFS".into());
    }
    // SAFETY: `unix` is SQLite's valid, static `unix` VFS: reading it is
    // sound, and the copy is leaked so that it lives as long as SQLite
    // may use it (the whole process).
    let hooks = unsafe {
        let mut pinned = *unix;
        pinned.zName = VFS_C.as_ptr();
        pinned.pNext = std::ptr::null_mut();
        pinned.xFullPathname = Some(full_pathname);
        let full_pathname = (*unix).xFullPathname.ok_or("no xFullPathname")?;
        let open = hook_system_call(
            unix,
            c"open",
            pinned_open as unsafe extern "C" fn(_, _, _) -> _,
        )?;
        hook_system_call(
            unix,
            c"geteuid",
            pinned_geteuid as unsafe extern "C" fn() -> _,
        )?;
        if ffi::sqlite3_vfs_register(Box::leak(Box::new(pinned)), 0) != ffi::SQLITE_OK {
            return Err("registering the cairn-pinned VFS failed".into());
        }
        Unix {
            vfs: unix,
            // SAFETY: SQLite's "open" entry has the signature of OpenFn.
            open: std::mem::transmute::<unsafe extern "C" fn(), OpenFn>(open),
            full_pathname,
        }
    };
    Ok(hooks)
}

/// Replaces system call `name` of the `unix` VFS with `hook`; returns the
/// original.
///
/// # Safety
/// `unix` must be SQLite's `unix` VFS and `hook` a function with the C
/// signature of that system call.
unsafe fn hook_system_call<F: Copy>(
    unix: *mut ffi::sqlite3_vfs,
    name: &CStr,
    hook: F,
) -> Result<unsafe extern "C" fn(), String> {
    assert_eq!(size_of::<F>(), size_of::<unsafe extern "C" fn()>());
    let fail = || format!("SQLite does not let cairn wrap {name:?}");
    // SAFETY: per this function's contract; SQLite stores the pointer as an
    // untyped `sqlite3_syscall_ptr` and calls it with the right signature.
    unsafe {
        let get = (*unix).xGetSystemCall.ok_or_else(fail)?;
        let set = (*unix).xSetSystemCall.ok_or_else(fail)?;
        let original = get(unix, name.as_ptr()).ok_or_else(fail)?;
        let hook = std::mem::transmute_copy::<F, unsafe extern "C" fn()>(&hook);
        if set(unix, name.as_ptr(), Some(hook)) != ffi::SQLITE_OK {
            return Err(fail());
        }
        Ok(original)
    }
}

/// A directory pinned for SQLite: while it lives, SQLite opened with
/// [`VFS`] on [`Pin::path`] reads the file the walk opened and finds its
/// side files in that directory, creating none.
#[derive(Debug)]
pub struct Pin {
    /// Kept open: its number is in the pinned path.
    _dir: OwnedFd,
    path: PathBuf,
    replaced: Arc<AtomicBool>,
}

impl Pin {
    /// Pins directory `dir` for the database `name` in it, which must be
    /// the file with device `dev` and inode `ino`.
    pub fn new(dir: BorrowedFd<'_>, name: &OsStr, dev: u64, ino: u64) -> io::Result<Self> {
        install().map_err(io::Error::other)?;
        let dir = rustix::io::fcntl_dupfd_cloexec(dir, 0)?;
        let prefix = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        let mut main = prefix.clone();
        main.extend_from_slice(name.as_bytes());
        let replaced = Arc::new(AtomicBool::new(false));
        let entry = Entry {
            prefix,
            main: main.clone(),
            dev,
            ino,
            replaced: Arc::clone(&replaced),
        };
        pins().push(entry);
        Ok(Self {
            path: PathBuf::from(OsStr::from_bytes(&main)),
            _dir: dir,
            replaced,
        })
    }

    /// The name to give SQLite.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether SQLite found another file than the walk's under the name.
    pub fn replaced(&self) -> bool {
        self.replaced.load(Ordering::SeqCst)
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        let main = self.path.as_os_str().as_bytes();
        // Unregistered before `dir` closes, so that no later descriptor
        // with the same number is taken for the pinned directory.
        pins().retain(|e| e.main != main);
    }
}

fn pins() -> std::sync::MutexGuard<'static, Vec<Entry>> {
    // A panic while holding the lock leaves a consistent Vec.
    PINS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What an `open` below a pinned directory must find: the database's
/// identity, or `None` for a side file.
enum Expect {
    Main(u64, u64, Arc<AtomicBool>),
    Side,
}

fn expectation(path: &[u8]) -> Option<Expect> {
    let pins = pins();
    let entry = pins.iter().find(|e| path.starts_with(&e.prefix))?;
    Some(if path == entry.main.as_slice() {
        Expect::Main(entry.dev, entry.ino, Arc::clone(&entry.replaced))
    } else {
        Expect::Side
    })
}

/// SQLite's `open`, checked below pinned directories (see the module doc).
unsafe extern "C" fn pinned_open(path: *const c_char, flags: c_int, mode: c_int) -> c_int {
    let Some(Ok(unix)) = UNIX.get() else {
        set_errno(rustix::io::Errno::IO);
        return -1;
    };
    // SAFETY: SQLite passes a valid NUL-terminated path.
    let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
    let expect = if bytes.starts_with(PREFIX) {
        expectation(bytes)
    } else {
        None
    };
    LAST_OPEN_PINNED.with(|p| p.set(expect.is_some()));
    let Some(expect) = expect else {
        // SAFETY: the original open, with SQLite's own arguments.
        return unsafe { (unix.open)(path, flags, mode) };
    };
    let no_create = flags & !(rustix::fs::OFlags::CREATE.bits() as c_int);
    // Without touching access times where the kernel allows it (see
    // capture::handle): EPERM on another owner's file, opened as it is.
    let quietly = no_create | rustix::fs::OFlags::NOATIME.bits() as c_int;
    // SAFETY: as above, minus O_CREAT, plus O_NOATIME.
    let mut fd = unsafe { (unix.open)(path, quietly, mode) };
    if fd < 0
        && std::io::Error::last_os_error().raw_os_error()
            == Some(rustix::io::Errno::PERM.raw_os_error())
    {
        // SAFETY: as above, minus O_CREAT.
        fd = unsafe { (unix.open)(path, no_create, mode) };
    }
    if fd < 0 {
        return fd;
    }
    // SAFETY: `fd` was just opened and is owned here until returned.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    match check_opened(&owned, &expect) {
        Ok(()) => std::os::fd::IntoRawFd::into_raw_fd(owned),
        Err(errno) => {
            if let Expect::Main(_, _, replaced) = expect {
                replaced.store(true, Ordering::SeqCst);
            }
            drop(owned);
            set_errno(errno);
            -1
        }
    }
}

fn check_opened(fd: &OwnedFd, expect: &Expect) -> Result<(), rustix::io::Errno> {
    let st = rustix::fs::fstat(fd)?;
    let regular = rustix::fs::FileType::from_raw_mode(st.st_mode as _).is_file();
    let ok = match expect {
        Expect::Main(dev, ino, _) => st.st_dev as u64 == *dev && st.st_ino as u64 == *ino,
        Expect::Side => regular && st.st_nlink == 1,
    };
    if ok {
        Ok(())
    } else {
        Err(rustix::io::Errno::ACCESS)
    }
}

fn set_errno(errno: rustix::io::Errno) {
    errno::set_errno(errno::Errno(errno.raw_os_error()));
}

/// SQLite's `geteuid`: "not root" right after a pinned open, so that SQLite
/// does not chown the side file it opened (see the module doc).
unsafe extern "C" fn pinned_geteuid() -> u32 {
    let euid = rustix::process::geteuid().as_raw();
    if euid == 0 && LAST_OPEN_PINNED.with(Cell::get) {
        return u32::MAX - 1;
    }
    euid
}

/// The VFS's `xFullPathname`: a pinned path is already absolute and must
/// stay as it is; anything else goes to the `unix` VFS.
unsafe extern "C" fn full_pathname(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n_out: c_int,
    out: *mut c_char,
) -> c_int {
    let Some(Ok(unix)) = UNIX.get() else {
        return ffi::SQLITE_ERROR;
    };
    // SAFETY: SQLite passes a valid NUL-terminated name.
    let bytes = unsafe { CStr::from_ptr(name) }.to_bytes_with_nul();
    if !bytes.starts_with(PREFIX) {
        // SAFETY: delegating with SQLite's own arguments.
        return unsafe { (unix.full_pathname)(unix.vfs, name, n_out, out) };
    }
    if bytes.len() > usize::try_from(n_out).unwrap_or(0) {
        return ffi::SQLITE_CANTOPEN;
    }
    // SAFETY: `out` has room for `n_out` bytes, checked above.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr().cast(), out, bytes.len()) };
    ffi::SQLITE_OK
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags};
    use std::fs::{self, File};
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;

    fn database(path: &Path, mode: &str, value: i64) {
        let conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "journal_mode", mode).unwrap();
        conn.execute_batch("CREATE TABLE t(x)").unwrap();
        conn.execute("INSERT INTO t VALUES (?1)", [value]).unwrap();
    }

    fn pin_of(dir: &Path, name: &str, walk_file: &File) -> Pin {
        let meta = walk_file.metadata().unwrap();
        let d = File::open(dir).unwrap();
        Pin::new(d.as_fd(), OsStr::new(name), meta.dev(), meta.ino()).unwrap()
    }

    fn open(pin: &Pin) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Connection::open_with_flags_and_vfs(pin.path(), flags, VFS)
    }

    fn value(conn: &Connection) -> rusqlite::Result<i64> {
        conn.query_row("SELECT x FROM t", [], |r| r.get(0))
    }

    #[test]
    fn a_file_swapped_in_after_the_walk_opened_its_own_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        database(&dir.path().join("a.db"), "DELETE", 1);
        database(&dir.path().join("b.db"), "DELETE", 2);
        let walk_file = File::open(dir.path().join("a.db")).unwrap();
        fs::rename(dir.path().join("b.db"), dir.path().join("a.db")).unwrap();
        let pin = pin_of(dir.path(), "a.db", &walk_file);
        let read = open(&pin).and_then(|c| value(&c));
        assert!(read.is_err(), "read the swapped-in file: {read:?}");
        assert!(pin.replaced());
    }

    #[test]
    fn the_directory_is_reached_by_its_handle_not_its_path() {
        let root = tempfile::tempdir().unwrap();
        let (real, other) = (root.path().join("real"), root.path().join("other"));
        fs::create_dir(&real).unwrap();
        fs::create_dir(&other).unwrap();
        database(&real.join("a.db"), "DELETE", 1);
        database(&other.join("a.db"), "DELETE", 2);
        let walk_file = File::open(real.join("a.db")).unwrap();
        let pin = pin_of(&real, "a.db", &walk_file);
        fs::rename(&real, root.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&other, &real).unwrap();
        assert_eq!(value(&open(&pin).unwrap()).unwrap(), 1);
    }

    #[test]
    fn a_pinned_reader_creates_no_side_files() {
        let dir = tempfile::tempdir().unwrap();
        database(&dir.path().join("a.db"), "WAL", 1);
        let walk_file = File::open(dir.path().join("a.db")).unwrap();
        let pin = pin_of(dir.path(), "a.db", &walk_file);
        // SQLite needs a -wal and a -shm to read a WAL database, and may
        // not create them: the read fails instead.
        assert!(open(&pin).and_then(|c| value(&c)).is_err());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.db"]);
    }
}
