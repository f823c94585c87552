//! Files and directories from fibers, mirroring [`std::fs`]: the same
//! names, the same signatures, [`std::io::Result`] everywhere, and `File`
//! implements [`Read`], [`Write`] and [`Seek`], so synchronous code (a
//! `BufReader`, `serde_json::to_writer`, `csv`, …) works on it unchanged.
//!
//! # How it works, and what it costs
//!
//! Regular files cannot be made non-blocking: the operating system has no
//! readiness to wait for. So every call here runs the `std` call on Tokio's
//! blocking pool (through [`unblock`](crate::unblock), or Tokio's
//! [`tokio::fs::File`] for [`File`]) while the fiber suspends: the fiber's
//! thread keeps running other fibers, but each call costs a hand-off to a
//! pool thread and back (microseconds, against the tens of nanoseconds of a
//! plain `read` from the page cache). Make few, large calls:
//!
//! - read or write whole files with [`read`], [`read_to_string`] and
//!   [`write()`] when they fit in memory;
//! - wrap a [`File`] in a [`BufReader`](std::io::BufReader) or
//!   [`BufWriter`](std::io::BufWriter) for small reads and writes (a
//!   `read_line` straight on a `File` makes a pool round trip per call);
//! - put a sequence of small `std::fs` calls into one
//!   [`unblock`](crate::unblock) closure.
//!
//! Calls return [`std::io::Result`], as `std`'s do. The fiber's own errors
//! (cancellation, a call outside a fiber) come out as an [`io::Error`] of
//! kind [`Other`](io::ErrorKind::Other) that wraps the fiber's
//! [`Error`](crate::Error): `?` in a fiber body turns it back into that
//! error, and [`Error::from`](crate::Error) gives it back explicitly.
//!
//! # Cancellation
//!
//! Every call here that goes to the pool is a cancellation point:
//!
//! - cancelled before the call: it returns the cancellation error and does
//!   nothing;
//! - cancelled while it waits: it returns the cancellation error at once,
//!   without waiting for the pool. An operation the pool had not started
//!   yet never runs; one it had started cannot be interrupted and **runs to
//!   its end**, its result dropped: a cancelled [`write()`] may still create
//!   and write the file, a cancelled [`remove_file`] may still remove it.
//!   Each function says what may happen. [`File`] keeps its own operation
//!   in flight instead, so that nothing is lost (see its docs);
//! - cancelled after the call returned: the result is the caller's; the
//!   fiber's next cancellation point fails.
//!
//! Outside a fiber, calls return an error wrapping
//! [`ErrorKind::NotInFiber`](crate::ErrorKind::NotInFiber) (they never block
//! the thread); in a fiber without a Tokio runtime (a plain
//! [`block_on`](crate::block_on)), one of kind
//! [`ErrorKind::Other`](crate::ErrorKind::Other).
//!
//! # Examples
//!
//! ```
//! use std::io::{BufRead, BufReader, BufWriter, Write};
//!
//! use fuseau_tokio::fs;
//!
//! let dir = std::env::temp_dir().join(format!("fuseau-fs-module-{}", std::process::id()));
//! let d = dir.clone();
//! fuseau_tokio::main(move || {
//!     fs::create_dir_all(&d)?;
//!     // Whole files in one call each.
//!     fs::write(d.join("greeting"), "hello")?;
//!     assert_eq!(fs::read_to_string(d.join("greeting"))?, "hello");
//!
//!     // Many small writes and reads: buffered, a pool trip per 8 KiB.
//!     let mut out = BufWriter::new(fs::File::create(d.join("lines"))?);
//!     for i in 0..1000 {
//!         writeln!(out, "line {i}")?;
//!     }
//!     out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
//!     let lines = BufReader::new(fs::File::open(d.join("lines"))?).lines().count();
//!     assert_eq!(lines, 1000);
//!     Ok(())
//! })?;
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::OsString;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Poll};

pub use std::fs::{FileType, Metadata, Permissions};

use tokio::io::{AsyncRead, AsyncSeekExt, AsyncWrite, ReadBuf};

use crate::future::await_future;
use crate::unblock::{require_tokio, unblock_as};

/// Runs a `std::fs` call on the blocking pool (see the module docs).
fn pool<T, F>(call: &str, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    unblock_as(call, f)?
}

/// Waits, from a fiber inside a Tokio runtime, for a future of Tokio's
/// file API.
fn wait<T>(call: &str, future: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    require_tokio(call)?;
    await_future(future)?
}

/// Reads the whole file at `path` into a vector, as [`std::fs::read`].
///
/// # Errors
///
/// As [`std::fs::read`] (for instance [`NotFound`](io::ErrorKind::NotFound));
/// the fiber's errors (see the [module docs](self)).
///
/// # Cancellation
///
/// A cancellation point. Cancelled while it waits, it returns at once; the
/// read may go on on the pool, and what it reads is dropped.
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join(format!("fuseau-fs-read-{}", std::process::id()));
/// let p = path.clone();
/// fuseau_tokio::main(move || {
///     fuseau_tokio::fs::write(&p, [1, 2, 3])?;
///     assert_eq!(fuseau_tokio::fs::read(&p)?, [1, 2, 3]);
///     Ok(())
/// })?;
/// std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read<P: AsRef<Path>>(path: P) -> io::Result<Vec<u8>> {
    let path = path.as_ref().to_owned();
    pool("fuseau_tokio::fs::read", move || std::fs::read(path))
}

/// Reads the whole file at `path` into a string, as
/// [`std::fs::read_to_string`].
///
/// # Errors
///
/// As [`std::fs::read_to_string`] (including
/// [`InvalidData`](io::ErrorKind::InvalidData) if the file is not UTF-8);
/// the fiber's errors (see the [module docs](self)).
///
/// # Cancellation
///
/// As [`read`].
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join(format!("fuseau-fs-rts-{}", std::process::id()));
/// let p = path.clone();
/// fuseau_tokio::main(move || {
///     fuseau_tokio::fs::write(&p, "text")?;
///     assert_eq!(fuseau_tokio::fs::read_to_string(&p)?, "text");
///     Ok(())
/// })?;
/// std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_to_string<P: AsRef<Path>>(path: P) -> io::Result<String> {
    let path = path.as_ref().to_owned();
    pool("fuseau_tokio::fs::read_to_string", move || {
        std::fs::read_to_string(path)
    })
}

/// Writes `contents` to the file at `path`, creating it if need be and
/// replacing what it held, as [`std::fs::write`].
///
/// The contents are copied (the pool thread needs data it owns).
///
/// # Errors
///
/// As [`std::fs::write`]; the fiber's errors (see the [module docs](self)).
///
/// # Cancellation
///
/// A cancellation point. Cancelled before the call, it does nothing.
/// Cancelled while it waits, it returns at once, but the write may go on on
/// the pool: the file may then be created, truncated, and written in part
/// or in full. Write again (or remove the file) if that matters.
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join(format!("fuseau-fs-write-{}", std::process::id()));
/// let p = path.clone();
/// fuseau_tokio::main(move || {
///     fuseau_tokio::fs::write(&p, b"first")?;
///     fuseau_tokio::fs::write(&p, b"second")?;
///     assert_eq!(fuseau_tokio::fs::read(&p)?, b"second");
///     Ok(())
/// })?;
/// std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write<P: AsRef<Path>, C: AsRef<[u8]>>(path: P, contents: C) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    let contents = contents.as_ref().to_owned();
    pool("fuseau_tokio::fs::write", move || {
        std::fs::write(path, contents)
    })
}

/// The metadata of the file or directory at `path`, following symbolic
/// links, as [`std::fs::metadata`].
///
/// # Errors
///
/// As [`std::fs::metadata`]; the fiber's errors (see the
/// [module docs](self)).
///
/// # Cancellation
///
/// A cancellation point; cancelled while it waits, it returns at once (the
/// query has no effect to undo).
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join(format!("fuseau-fs-metadata-{}", std::process::id()));
/// let p = path.clone();
/// fuseau_tokio::main(move || {
///     fuseau_tokio::fs::write(&p, "12345")?;
///     let meta = fuseau_tokio::fs::metadata(&p)?;
///     assert!(meta.is_file());
///     assert_eq!(meta.len(), 5);
///     Ok(())
/// })?;
/// std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    let path = path.as_ref().to_owned();
    pool("fuseau_tokio::fs::metadata", move || {
        std::fs::metadata(path)
    })
}

/// Creates a directory, as [`std::fs::create_dir`] (its parent must exist).
///
/// # Errors
///
/// As [`std::fs::create_dir`] (for instance
/// [`AlreadyExists`](io::ErrorKind::AlreadyExists)); the fiber's errors
/// (see the [module docs](self)).
///
/// # Cancellation
///
/// A cancellation point. Cancelled while it waits, it returns at once; the
/// directory may still be created.
///
/// # Examples
///
/// ```
/// let dir = std::env::temp_dir().join(format!("fuseau-fs-create-dir-{}", std::process::id()));
/// let d = dir.clone();
/// fuseau_tokio::main(move || {
///     fuseau_tokio::fs::create_dir(&d)?;
///     assert!(fuseau_tokio::fs::metadata(&d)?.is_dir());
///     fuseau_tokio::fs::remove_dir(&d)?;
///     Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn create_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    pool("fuseau_tokio::fs::create_dir", move || {
        std::fs::create_dir(path)
    })
}

/// Creates a directory and any of its missing parents, as
/// [`std::fs::create_dir_all`]; a directory that exists already is fine.
///
/// # Errors
///
/// As [`std::fs::create_dir_all`]; the fiber's errors (see the
/// [module docs](self)).
///
/// # Cancellation
///
/// A cancellation point. Cancelled while it waits, it returns at once; some
/// or all of the directories may still be created.
///
/// # Examples
///
/// ```
/// let dir = std::env::temp_dir().join(format!("fuseau-fs-create-all-{}", std::process::id()));
/// let d = dir.clone();
/// fuseau_tokio::main(move || {
///     fuseau_tokio::fs::create_dir_all(d.join("a/b/c"))?;
///     assert!(fuseau_tokio::fs::metadata(d.join("a/b/c"))?.is_dir());
///     fuseau_tokio::fs::remove_dir_all(&d)?;
///     Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn create_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    pool("fuseau_tokio::fs::create_dir_all", move || {
        std::fs::create_dir_all(path)
    })
}

/// Removes a file, as [`std::fs::remove_file`].
///
/// # Errors
///
/// As [`std::fs::remove_file`] (for instance
/// [`NotFound`](io::ErrorKind::NotFound)); the fiber's errors (see the
/// [module docs](self)).
///
/// # Cancellation
///
/// A cancellation point. Cancelled while it waits, it returns at once; the
/// file may still be removed.
///
/// # Examples
///
/// ```
/// let path = std::env::temp_dir().join(format!("fuseau-fs-remove-{}", std::process::id()));
/// let p = path.clone();
/// fuseau_tokio::main(move || {
///     fuseau_tokio::fs::write(&p, "short-lived")?;
///     fuseau_tokio::fs::remove_file(&p)?;
///     let e = fuseau_tokio::fs::metadata(&p).unwrap_err();
///     assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
///     Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn remove_file<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    pool("fuseau_tokio::fs::remove_file", move || {
        std::fs::remove_file(path)
    })
}

/// Removes an empty directory, as [`std::fs::remove_dir`].
///
/// # Errors
///
/// As [`std::fs::remove_dir`] (the directory must be empty); the fiber's
/// errors (see the [module docs](self)).
///
/// # Cancellation
///
/// A cancellation point. Cancelled while it waits, it returns at once; the
/// directory may still be removed.
///
/// # Examples
///
/// ```
/// let dir = std::env::temp_dir().join(format!("fuseau-fs-remove-dir-{}", std::process::id()));
/// let d = dir.clone();
/// fuseau_tokio::main(move || {
///     fuseau_tokio::fs::create_dir(&d)?;
///     fuseau_tokio::fs::remove_dir(&d)?;
///     assert!(fuseau_tokio::fs::metadata(&d).is_err());
///     Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn remove_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    pool("fuseau_tokio::fs::remove_dir", move || {
        std::fs::remove_dir(path)
    })
}

/// Removes a directory and everything in it, as
/// [`std::fs::remove_dir_all`], in one call to the pool.
///
/// # Errors
///
/// As [`std::fs::remove_dir_all`]; the fiber's errors (see the
/// [module docs](self)).
///
/// # Cancellation
///
/// A cancellation point. Cancelled while it waits, it returns at once; the
/// removal may go on, and remove some or all of the tree.
///
/// # Examples
///
/// ```
/// let dir = std::env::temp_dir().join(format!("fuseau-fs-remove-all-{}", std::process::id()));
/// let d = dir.clone();
/// fuseau_tokio::main(move || {
///     fuseau_tokio::fs::create_dir_all(d.join("sub"))?;
///     fuseau_tokio::fs::write(d.join("sub/file"), "x")?;
///     fuseau_tokio::fs::remove_dir_all(&d)?;
///     assert!(fuseau_tokio::fs::metadata(&d).is_err());
///     Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn remove_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    pool("fuseau_tokio::fs::remove_dir_all", move || {
        std::fs::remove_dir_all(path)
    })
}

/// Renames a file or directory, replacing `to` if it exists, as
/// [`std::fs::rename`].
///
/// # Errors
///
/// As [`std::fs::rename`]; the fiber's errors (see the
/// [module docs](self)).
///
/// # Cancellation
///
/// A cancellation point. Cancelled while it waits, it returns at once; the
/// rename may still happen (it is atomic: it happens or it does not).
///
/// # Examples
///
/// ```
/// let dir = std::env::temp_dir().join(format!("fuseau-fs-rename-{}", std::process::id()));
/// let d = dir.clone();
/// fuseau_tokio::main(move || {
///     fuseau_tokio::fs::create_dir_all(&d)?;
///     fuseau_tokio::fs::write(d.join("draft"), "v1")?;
///     fuseau_tokio::fs::rename(d.join("draft"), d.join("final"))?;
///     assert_eq!(fuseau_tokio::fs::read_to_string(d.join("final"))?, "v1");
///     fuseau_tokio::fs::remove_dir_all(&d)?;
///     Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn rename<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<()> {
    let (from, to) = (from.as_ref().to_owned(), to.as_ref().to_owned());
    pool("fuseau_tokio::fs::rename", move || {
        std::fs::rename(from, to)
    })
}

/// Copies the contents and permissions of the file `from` to the file `to`
/// (replacing it), as [`std::fs::copy`], and returns the number of bytes
/// copied. The copy is one call to the pool, however large the file.
///
/// # Errors
///
/// As [`std::fs::copy`]; the fiber's errors (see the
/// [module docs](self)).
///
/// # Cancellation
///
/// A cancellation point. Cancelled while it waits, it returns at once; the
/// copy may go on, and leave `to` created, truncated, and written in part
/// or in full.
///
/// # Examples
///
/// ```
/// let dir = std::env::temp_dir().join(format!("fuseau-fs-copy-{}", std::process::id()));
/// let d = dir.clone();
/// fuseau_tokio::main(move || {
///     fuseau_tokio::fs::create_dir_all(&d)?;
///     fuseau_tokio::fs::write(d.join("original"), "data")?;
///     assert_eq!(fuseau_tokio::fs::copy(d.join("original"), d.join("copy"))?, 4);
///     assert_eq!(fuseau_tokio::fs::read(d.join("copy"))?, b"data");
///     fuseau_tokio::fs::remove_dir_all(&d)?;
///     Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn copy<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<u64> {
    let (from, to) = (from.as_ref().to_owned(), to.as_ref().to_owned());
    pool("fuseau_tokio::fs::copy", move || std::fs::copy(from, to))
}

/// The entries of the directory at `path`, as [`std::fs::read_dir`].
///
/// The whole directory is listed in one call to the pool (with each
/// entry's [`FileType`], which the listing usually gives for free), and the
/// returned [`ReadDir`] iterates over that listing without waiting, so it
/// holds the whole directory in memory. The order is the system's, as
/// `std`'s; `.` and `..` are left out.
///
/// # Errors
///
/// As [`std::fs::read_dir`] (for instance
/// [`NotFound`](io::ErrorKind::NotFound), or an error if `path` is not a
/// directory); the fiber's errors (see the [module docs](self)). An error
/// in the middle of the listing comes out as an `Err` item of the iterator,
/// as with `std`.
///
/// # Cancellation
///
/// A cancellation point. Cancelled while it waits, it returns at once; the
/// listing may go on on the pool, and is dropped.
///
/// # Examples
///
/// ```
/// let dir = std::env::temp_dir().join(format!("fuseau-fs-read-dir-{}", std::process::id()));
/// let d = dir.clone();
/// fuseau_tokio::main(move || {
///     fuseau_tokio::fs::create_dir_all(d.join("sub"))?;
///     fuseau_tokio::fs::write(d.join("file"), "x")?;
///     let mut names = Vec::new();
///     for entry in fuseau_tokio::fs::read_dir(&d)? {
///         let entry = entry?;
///         names.push((entry.file_name(), entry.file_type()?.is_dir()));
///     }
///     names.sort();
///     assert_eq!(names, [("file".into(), false), ("sub".into(), true)]);
///     fuseau_tokio::fs::remove_dir_all(&d)?;
///     Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_dir<P: AsRef<Path>>(path: P) -> io::Result<ReadDir> {
    let path = path.as_ref().to_owned();
    let entries = pool("fuseau_tokio::fs::read_dir", move || {
        let entries = std::fs::read_dir(path)?
            .map(|entry| {
                entry.map(|entry| DirEntry {
                    file_type: entry.file_type().ok(),
                    inner: Arc::new(entry),
                })
            })
            .collect::<Vec<_>>();
        Ok(entries)
    })?;
    Ok(ReadDir {
        entries: entries.into_iter(),
    })
}

/// An iterator over the entries of a directory, from [`read_dir`]: items
/// are `io::Result<DirEntry>`, as with [`std::fs::ReadDir`].
///
/// The directory was listed when [`read_dir`] returned: iterating never
/// waits and is no cancellation point.
///
/// # Examples
///
/// ```
/// fuseau_tokio::main(|| {
///     let entries = fuseau_tokio::fs::read_dir(std::env::temp_dir())?;
///     for entry in entries {
///         let _path = entry?.path();
///     }
///     Ok(())
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
pub struct ReadDir {
    entries: std::vec::IntoIter<io::Result<DirEntry>>,
}

impl Iterator for ReadDir {
    type Item = io::Result<DirEntry>;

    fn next(&mut self) -> Option<io::Result<DirEntry>> {
        self.entries.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for ReadDir {}

impl fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadDir")
            .field("remaining", &self.entries.len())
            .finish()
    }
}

/// An entry of a directory, from [`ReadDir`], as [`std::fs::DirEntry`].
///
/// Its path, name and (in almost every case) file type were read with the
/// listing; [`metadata`](DirEntry::metadata) asks the system again, through
/// the pool.
///
/// # Examples
///
/// ```
/// fuseau_tokio::main(|| {
///     for entry in fuseau_tokio::fs::read_dir(std::env::temp_dir())? {
///         let entry = entry?;
///         assert_eq!(entry.path().file_name(), Some(entry.file_name().as_os_str()));
///     }
///     Ok(())
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
#[derive(Clone)]
pub struct DirEntry {
    inner: Arc<std::fs::DirEntry>,
    /// Read with the listing; `None` if that failed (it is asked again).
    file_type: Option<FileType>,
}

impl DirEntry {
    /// The full path of the entry: the directory given to [`read_dir`]
    /// joined with the entry's name. Never waits.
    pub fn path(&self) -> PathBuf {
        self.inner.path()
    }

    /// The entry's name, without any leading path. Never waits.
    pub fn file_name(&self) -> OsString {
        self.inner.file_name()
    }

    /// The entry's file type (a symbolic link is reported as one, not
    /// followed), as [`std::fs::DirEntry::file_type`].
    ///
    /// It was read with the listing, so this does not wait; in the rare
    /// case where the listing could not tell, it asks the system through
    /// the pool.
    ///
    /// # Errors
    ///
    /// As [`std::fs::DirEntry::file_type`]; when it asks the pool, the
    /// fiber's errors too (see the [module docs](self)).
    ///
    /// # Cancellation
    ///
    /// A cancellation point only when it asks the pool (it then returns at
    /// once, the query having no effect to undo).
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau_tokio::main(|| {
    ///     for entry in fuseau_tokio::fs::read_dir(std::env::temp_dir())? {
    ///         let _is_dir = entry?.file_type()?.is_dir();
    ///     }
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn file_type(&self) -> io::Result<FileType> {
        if let Some(file_type) = self.file_type {
            return Ok(file_type);
        }
        let inner = self.inner.clone();
        pool("fuseau_tokio::fs::DirEntry::file_type", move || {
            inner.file_type()
        })
    }

    /// The entry's metadata (a symbolic link's own, not followed), as
    /// [`std::fs::DirEntry::metadata`]: a call to the pool.
    ///
    /// # Errors
    ///
    /// As [`std::fs::DirEntry::metadata`] (the entry may have been removed
    /// since the listing); the fiber's errors (see the
    /// [module docs](self)).
    ///
    /// # Cancellation
    ///
    /// A cancellation point; cancelled while it waits, it returns at once
    /// (the query has no effect to undo).
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let mut total = 0;
    ///     for entry in fuseau_tokio::fs::read_dir(std::env::temp_dir())? {
    ///         if let Ok(meta) = entry?.metadata() {
    ///             total += meta.len();
    ///         }
    ///     }
    ///     let _ = total;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn metadata(&self) -> io::Result<Metadata> {
        let inner = self.inner.clone();
        pool("fuseau_tokio::fs::DirEntry::metadata", move || {
            inner.metadata()
        })
    }
}

impl fmt::Debug for DirEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DirEntry").field(&self.path()).finish()
    }
}

/// An open file, for fibers: [`Read`], [`Write`] and [`Seek`] as
/// [`std::fs::File`], each call running on Tokio's blocking pool while the
/// fiber suspends.
///
/// It wraps a [`tokio::fs::File`], whose bookkeeping keeps one operation in
/// flight on the pool, and so keeps the file consistent when a fiber is
/// cancelled in the middle of a call:
///
/// - a **read** cancelled while it waits returns the cancellation error,
///   but the read goes on, and the bytes it reads are kept by the `File`:
///   the next read returns them, and a seek relative to the current
///   position counts them as unread. Nothing is skipped or read twice;
/// - a **write** waits until its bytes reached the operating system (not
///   the disk: see [`sync_all`](File::sync_all)). Once it has handed them
///   to the pool they are committed: cancelled then, `write` returns
///   `Ok(n)` at once, the bytes land in the background, and the fiber's
///   next call fails with the cancellation. An error of that background
///   write is reported by the file's next operation. So `write` never
///   reports as unwritten bytes that may land, and `write_all` neither
///   drops nor repeats any;
/// - a **seek** cancelled while it waits may still take effect (before the
///   file's next operation): after a cancelled seek the position is the
///   old one or the new one, so seek again from
///   [`SeekFrom::Start`] or [`SeekFrom::End`] before relying on it.
///
/// Each call costs a round trip to the pool (and Tokio copies the bytes
/// through a buffer of its own): wrap the file in a
/// [`BufReader`](std::io::BufReader) or [`BufWriter`](std::io::BufWriter)
/// for small reads and writes. A read or write moves at most 2 MiB (Tokio's
/// buffer); `read_exact`, `read_to_end` and `write_all` loop as usual.
///
/// Unlike `std`, `&File` is neither `Read`, `Write` nor `Seek`: the
/// operation in flight is state of the `File`, which needs `&mut`. Use
/// [`try_clone`](File::try_clone) for a second handle (sharing the
/// position, as in `std`). Dropping a `File` does not wait: an operation
/// still in flight (after a cancelled call) completes in the background.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Seek, SeekFrom, Write};
///
/// let path = std::env::temp_dir().join(format!("fuseau-fs-file-{}", std::process::id()));
/// let p = path.clone();
/// fuseau_tokio::main(move || {
///     let mut file = fuseau_tokio::fs::File::options()
///         .read(true)
///         .write(true)
///         .create(true)
///         .truncate(true)
///         .open(&p)?;
///     file.write_all(b"hello, world")?;
///     file.seek(SeekFrom::Start(7))?;
///     let mut rest = String::new();
///     file.read_to_string(&mut rest)?;
///     assert_eq!(rest, "world");
///     Ok(())
/// })?;
/// std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct File {
    inner: tokio::fs::File,
}

impl File {
    /// Opens the file at `path` for reading, as [`std::fs::File::open`].
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::open`] (for instance
    /// [`NotFound`](io::ErrorKind::NotFound)); the fiber's errors (see the
    /// [module docs](self)).
    ///
    /// # Cancellation
    ///
    /// A cancellation point. Cancelled while it waits, it returns at once;
    /// the open may go on on the pool, and the file it opens is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let e = fuseau_tokio::fs::File::open("/no/such/file").unwrap_err();
    ///     assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn open<P: AsRef<Path>>(path: P) -> io::Result<File> {
        let path = path.as_ref().to_owned();
        pool("fuseau_tokio::fs::File::open", move || {
            std::fs::File::open(path)
        })
        .map(File::from_std)
    }

    /// Opens the file at `path` for writing, creating it if need be and
    /// truncating it if not, as [`std::fs::File::create`].
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::create`]; the fiber's errors (see the
    /// [module docs](self)).
    ///
    /// # Cancellation
    ///
    /// A cancellation point. Cancelled while it waits, it returns at once;
    /// the file may still be created or truncated.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let path = std::env::temp_dir().join(format!("fuseau-fs-create-{}", std::process::id()));
    /// let p = path.clone();
    /// fuseau_tokio::main(move || {
    ///     let mut file = fuseau_tokio::fs::File::create(&p)?;
    ///     file.write_all(b"new")?;
    ///     assert_eq!(fuseau_tokio::fs::read(&p)?, b"new");
    ///     Ok(())
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create<P: AsRef<Path>>(path: P) -> io::Result<File> {
        let path = path.as_ref().to_owned();
        pool("fuseau_tokio::fs::File::create", move || {
            std::fs::File::create(path)
        })
        .map(File::from_std)
    }

    /// Creates a new file at `path` for reading and writing, failing if
    /// it exists, as [`std::fs::File::create_new`].
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::create_new`] (for instance
    /// [`AlreadyExists`](io::ErrorKind::AlreadyExists)); the fiber's errors
    /// (see the [module docs](self)).
    ///
    /// # Cancellation
    ///
    /// A cancellation point. Cancelled while it waits, it returns at once;
    /// the file may still be created (empty).
    ///
    /// # Examples
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("fuseau-fs-create-new-{}", std::process::id()));
    /// let p = path.clone();
    /// fuseau_tokio::main(move || {
    ///     fuseau_tokio::fs::File::create_new(&p)?;
    ///     let again = fuseau_tokio::fs::File::create_new(&p).unwrap_err();
    ///     assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
    ///     Ok(())
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_new<P: AsRef<Path>>(path: P) -> io::Result<File> {
        let path = path.as_ref().to_owned();
        pool("fuseau_tokio::fs::File::create_new", move || {
            std::fs::File::create_new(path)
        })
        .map(File::from_std)
    }

    /// A new [`OpenOptions`], to open a file in other ways than
    /// [`open`](File::open) and [`create`](File::create) do, as
    /// [`std::fs::File::options`]. Never waits.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let path = std::env::temp_dir().join(format!("fuseau-fs-options-{}", std::process::id()));
    /// let p = path.clone();
    /// fuseau_tokio::main(move || {
    ///     fuseau_tokio::fs::write(&p, "one ")?;
    ///     let mut log = fuseau_tokio::fs::File::options().append(true).open(&p)?;
    ///     log.write_all(b"two")?;
    ///     assert_eq!(fuseau_tokio::fs::read_to_string(&p)?, "one two");
    ///     Ok(())
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Wraps a file opened with `std`. Never waits (and needs no fiber).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// let path = std::env::temp_dir().join(format!("fuseau-fs-from-std-{}", std::process::id()));
    /// std::fs::write(&path, "from std")?;
    /// let std_file = std::fs::File::open(&path)?;
    /// fuseau_tokio::main(move || {
    ///     let mut file = fuseau_tokio::fs::File::from_std(std_file);
    ///     let mut text = String::new();
    ///     file.read_to_string(&mut text)?;
    ///     assert_eq!(text, "from std");
    ///     Ok(())
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_std(file: std::fs::File) -> File {
        File {
            inner: tokio::fs::File::from_std(file),
        }
    }

    /// Flushes the file's data and metadata to the disk, as
    /// [`std::fs::File::sync_all`], after any operation still in flight.
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::sync_all`], and the error of a write that
    /// completed in the background (see [`File`]); the fiber's errors (see
    /// the [module docs](self)).
    ///
    /// # Cancellation
    ///
    /// A cancellation point. Cancelled while it waits, it returns at once;
    /// the sync may go on on the pool (it changes nothing but durability).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let path = std::env::temp_dir().join(format!("fuseau-fs-sync-all-{}", std::process::id()));
    /// let p = path.clone();
    /// fuseau_tokio::main(move || {
    ///     let mut file = fuseau_tokio::fs::File::create(&p)?;
    ///     file.write_all(b"durable")?;
    ///     file.sync_all()?; // on the disk now, not only in the page cache
    ///     Ok(())
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sync_all(&self) -> io::Result<()> {
        wait("fuseau_tokio::fs::File::sync_all", self.inner.sync_all())
    }

    /// Flushes the file's data (and only the metadata needed to read it
    /// back) to the disk, as [`std::fs::File::sync_data`].
    ///
    /// # Errors
    ///
    /// As [`sync_all`](File::sync_all).
    ///
    /// # Cancellation
    ///
    /// As [`sync_all`](File::sync_all).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let path = std::env::temp_dir().join(format!("fuseau-fs-sync-data-{}", std::process::id()));
    /// let p = path.clone();
    /// fuseau_tokio::main(move || {
    ///     let mut file = fuseau_tokio::fs::File::create(&p)?;
    ///     file.write_all(b"data")?;
    ///     file.sync_data()?;
    ///     Ok(())
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sync_data(&self) -> io::Result<()> {
        wait("fuseau_tokio::fs::File::sync_data", self.inner.sync_data())
    }

    /// Truncates or extends (with zeros) the file to `size` bytes, as
    /// [`std::fs::File::set_len`]; the position does not move.
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::set_len`] (for instance if the file is not open
    /// for writing); the fiber's errors (see the [module docs](self)).
    ///
    /// # Cancellation
    ///
    /// A cancellation point. Cancelled while it waits, it returns at once;
    /// the size may still change (before the file's next operation).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let path = std::env::temp_dir().join(format!("fuseau-fs-set-len-{}", std::process::id()));
    /// let p = path.clone();
    /// fuseau_tokio::main(move || {
    ///     let mut file = fuseau_tokio::fs::File::create(&p)?;
    ///     file.write_all(b"0123456789")?;
    ///     file.set_len(4)?;
    ///     assert_eq!(file.metadata()?.len(), 4);
    ///     Ok(())
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        wait("fuseau_tokio::fs::File::set_len", self.inner.set_len(size))
    }

    /// The file's metadata, as [`std::fs::File::metadata`].
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::metadata`]; the fiber's errors (see the
    /// [module docs](self)).
    ///
    /// # Cancellation
    ///
    /// A cancellation point; cancelled while it waits, it returns at once
    /// (the query has no effect to undo).
    ///
    /// # Examples
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("fuseau-fs-file-meta-{}", std::process::id()));
    /// std::fs::write(&path, "abc")?;
    /// let p = path.clone();
    /// fuseau_tokio::main(move || {
    ///     let file = fuseau_tokio::fs::File::open(&p)?;
    ///     assert_eq!(file.metadata()?.len(), 3);
    ///     Ok(())
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn metadata(&self) -> io::Result<Metadata> {
        wait("fuseau_tokio::fs::File::metadata", self.inner.metadata())
    }

    /// Changes the file's permissions, as
    /// [`std::fs::File::set_permissions`].
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::set_permissions`]; the fiber's errors (see the
    /// [module docs](self)).
    ///
    /// # Cancellation
    ///
    /// A cancellation point. Cancelled while it waits, it returns at once;
    /// the permissions may still change.
    ///
    /// # Examples
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("fuseau-fs-perms-{}", std::process::id()));
    /// let p = path.clone();
    /// fuseau_tokio::main(move || {
    ///     let file = fuseau_tokio::fs::File::create(&p)?;
    ///     let mut perms = file.metadata()?.permissions();
    ///     perms.set_readonly(true);
    ///     file.set_permissions(perms)?;
    ///     assert!(file.metadata()?.permissions().readonly());
    ///     Ok(())
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_permissions(&self, perm: Permissions) -> io::Result<()> {
        wait(
            "fuseau_tokio::fs::File::set_permissions",
            self.inner.set_permissions(perm),
        )
    }

    /// A second handle to the same open file, as
    /// [`std::fs::File::try_clone`]: both share the position. It waits for
    /// an operation still in flight first.
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::try_clone`]; the fiber's errors (see the
    /// [module docs](self)).
    ///
    /// # Cancellation
    ///
    /// A cancellation point. Cancelled while it waits, it returns at once;
    /// a descriptor the pool duplicated meanwhile is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Seek, SeekFrom, Write};
    ///
    /// let path = std::env::temp_dir().join(format!("fuseau-fs-try-clone-{}", std::process::id()));
    /// let p = path.clone();
    /// fuseau_tokio::main(move || {
    ///     let mut writer = fuseau_tokio::fs::File::options()
    ///         .read(true)
    ///         .write(true)
    ///         .create(true)
    ///         .truncate(true)
    ///         .open(&p)?;
    ///     let mut reader = writer.try_clone()?;
    ///     writer.write_all(b"shared")?;
    ///     reader.seek(SeekFrom::Start(0))?;
    ///     let mut text = String::new();
    ///     reader.read_to_string(&mut text)?;
    ///     assert_eq!(text, "shared");
    ///     Ok(())
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_clone(&self) -> io::Result<File> {
        wait("fuseau_tokio::fs::File::try_clone", self.inner.try_clone())
            .map(|inner| File { inner })
    }
}

impl Read for File {
    /// Reads up to `out.len()` bytes (at most 2 MiB) from the current
    /// position, as `std`'s `File`: one round trip to the pool, or none if
    /// bytes of a cancelled read are waiting (see [`File`]).
    ///
    /// # Errors
    ///
    /// The file's errors; the fiber's errors (see the [module docs](self)).
    ///
    /// # Cancellation
    ///
    /// A cancellation point. Cancelled while it waits, it returns the
    /// cancellation error at once; the bytes the pool reads are kept for
    /// the next read (see [`File`]).
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let inner = &mut self.inner;
        wait(
            "fuseau_tokio::fs::File::read",
            poll_fn(|cx| {
                let mut buf = ReadBuf::new(&mut *out);
                ready!(Pin::new(&mut *inner).poll_read(cx, &mut buf))?;
                Poll::Ready(Ok(buf.filled().len()))
            }),
        )
    }
}

impl Write for File {
    /// Writes up to `data.len()` bytes (at most 2 MiB) at the current
    /// position (or at the end, in append mode), and waits until they
    /// reached the operating system: one round trip to the pool.
    ///
    /// # Errors
    ///
    /// The file's errors, including the error of a write that completed in
    /// the background; the fiber's errors (see the [module docs](self)).
    ///
    /// # Cancellation
    ///
    /// A cancellation point. Cancelled before the call, or while it waits
    /// for an operation still in flight, it returns the cancellation error
    /// and writes nothing. Cancelled once the bytes went to the pool, it
    /// returns `Ok(n)` at once: they are committed, and land in the
    /// background (see [`File`]).
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let inner = &mut self.inner;
        let n = wait(
            "fuseau_tokio::fs::File::write",
            poll_fn(|cx| Pin::new(&mut *inner).poll_write(cx, data)),
        )?;
        // Tokio took the bytes and started writing them: wait for the
        // write to complete, so that errors are reported here, as `std`
        // does. The bytes are committed, though: a cancellation now does
        // not undo them, so it is left to the next call to report.
        match await_future(poll_fn(|cx| Pin::new(&mut *inner).poll_flush(cx))) {
            Ok(result) => result.map(|()| n),
            Err(e) if e.is_cancellation() => Ok(n),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits for a write still in flight (after a cancelled
    /// [`write`](Write::write)); otherwise there is nothing to flush, as
    /// [`write`](Write::write) waits for its bytes. Not a sync to the disk:
    /// see [`sync_all`](File::sync_all).
    ///
    /// # Errors
    ///
    /// The error of that write; the fiber's errors (see the
    /// [module docs](self)).
    ///
    /// # Cancellation
    ///
    /// A cancellation point. Cancelled while it waits, it returns at once;
    /// the write goes on.
    fn flush(&mut self) -> io::Result<()> {
        let inner = &mut self.inner;
        wait(
            "fuseau_tokio::fs::File::flush",
            poll_fn(|cx| Pin::new(&mut *inner).poll_flush(cx)),
        )
    }
}

impl Seek for File {
    /// Moves the position, as `std`'s `File`, after any operation still in
    /// flight, and returns the new position from the start of the file.
    ///
    /// # Errors
    ///
    /// The file's errors (for instance seeking before the start); the
    /// fiber's errors (see the [module docs](self)).
    ///
    /// # Cancellation
    ///
    /// A cancellation point. Cancelled while it waits, it returns at once;
    /// the seek may still take effect (see [`File`]).
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        wait("fuseau_tokio::fs::File::seek", self.inner.seek(pos))
    }
}

impl From<std::fs::File> for File {
    /// Same as [`File::from_std`].
    fn from(file: std::fs::File) -> File {
        File::from_std(file)
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("fd", &self.as_raw_fd())
            .finish_non_exhaustive()
    }
}

/// Options to open a file with, builder-style, as [`std::fs::OpenOptions`]:
/// set them, then [`open`](OpenOptions::open). The setters never wait.
///
/// # Examples
///
/// ```
/// use std::io::Write;
///
/// use fuseau_tokio::fs::OpenOptions;
///
/// let path = std::env::temp_dir().join(format!("fuseau-fs-open-options-{}", std::process::id()));
/// let p = path.clone();
/// fuseau_tokio::main(move || {
///     let mut file = OpenOptions::new().write(true).create_new(true).open(&p)?;
///     file.write_all(b"made here")?;
///     let e = OpenOptions::new().write(true).create_new(true).open(&p).unwrap_err();
///     assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
///     Ok(())
/// })?;
/// std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    inner: std::fs::OpenOptions,
}

impl OpenOptions {
    /// Options with everything off, as [`std::fs::OpenOptions::new`]: set
    /// at least one of `read`, `write` and `append` before opening.
    pub fn new() -> OpenOptions {
        OpenOptions {
            inner: std::fs::OpenOptions::new(),
        }
    }

    /// Whether to open for reading.
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.inner.read(read);
        self
    }

    /// Whether to open for writing.
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.inner.write(write);
        self
    }

    /// Whether every write goes to the end of the file (implies writing).
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.inner.append(append);
        self
    }

    /// Whether to truncate the file to 0 bytes when opening it (needs
    /// writing).
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.inner.truncate(truncate);
        self
    }

    /// Whether to create the file if it does not exist (needs writing or
    /// appending).
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.inner.create(create);
        self
    }

    /// Whether to create the file, failing if it exists (atomically; needs
    /// writing or appending; `create` and `truncate` are then ignored).
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.inner.create_new(create_new);
        self
    }

    /// The permission bits of a file this creates (before the umask), as
    /// [`std::os::unix::fs::OpenOptionsExt::mode`]; default `0o666`.
    pub fn mode(&mut self, mode: u32) -> &mut OpenOptions {
        std::os::unix::fs::OpenOptionsExt::mode(&mut self.inner, mode);
        self
    }

    /// Extra flags for `open(2)`, as
    /// [`std::os::unix::fs::OpenOptionsExt::custom_flags`].
    pub fn custom_flags(&mut self, flags: i32) -> &mut OpenOptions {
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut self.inner, flags);
        self
    }

    /// Opens the file at `path` with these options, as
    /// [`std::fs::OpenOptions::open`].
    ///
    /// # Errors
    ///
    /// As [`std::fs::OpenOptions::open`] (for instance
    /// [`NotFound`](io::ErrorKind::NotFound),
    /// [`AlreadyExists`](io::ErrorKind::AlreadyExists) with `create_new`,
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for contradictory
    /// options); the fiber's errors (see the [module docs](self)).
    ///
    /// # Cancellation
    ///
    /// A cancellation point. Cancelled while it waits, it returns at once;
    /// the open may go on on the pool, with its effects (a file created or
    /// truncated), and the file it opens is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// let path = std::env::temp_dir().join(format!("fuseau-fs-open-{}", std::process::id()));
    /// std::fs::write(&path, "contents")?;
    /// let p = path.clone();
    /// fuseau_tokio::main(move || {
    ///     let mut file = fuseau_tokio::fs::OpenOptions::new().read(true).open(&p)?;
    ///     let mut text = String::new();
    ///     file.read_to_string(&mut text)?;
    ///     assert_eq!(text, "contents");
    ///     Ok(())
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open<P: AsRef<Path>>(&self, path: P) -> io::Result<File> {
        let options = self.inner.clone();
        let path = path.as_ref().to_owned();
        pool("fuseau_tokio::fs::OpenOptions::open", move || {
            options.open(path)
        })
        .map(File::from_std)
    }
}

impl Default for OpenOptions {
    /// Same as [`OpenOptions::new`].
    fn default() -> OpenOptions {
        OpenOptions::new()
    }
}

impl From<std::fs::OpenOptions> for OpenOptions {
    /// The same options, to open files from fibers.
    fn from(inner: std::fs::OpenOptions) -> OpenOptions {
        OpenOptions { inner }
    }
}
