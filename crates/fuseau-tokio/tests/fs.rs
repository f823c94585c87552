//! `fuseau_tokio::fs`: round trips in a temporary directory, `Seek`,
//! std's errors, and the three cases of cancellation for `fs::read`,
//! `fs::write`, `File::read` and `File::write` (FIFOs make a read or a
//! write wait for as long as the test wants).

mod bounded;
mod common;

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use common::{ms, Log};
use fuseau_tokio::fs::{self, File, OpenOptions};
use fuseau_tokio::{AnyFiber, Builder, Error, ErrorKind};

/// A directory of its own under the system's temporary directory, removed
/// when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("fuseau-tokio-fs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The fiber's error inside an `io::Error` from `fs`.
fn fiber_error(e: io::Error) -> Error {
    Error::from(e)
}

/// Makes a FIFO (named pipe) at `path`.
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo failed: {status:?}");
}

/// `O_NONBLOCK` on Linux.
const O_NONBLOCK: i32 = 0o4000;
/// `ENXIO`: opening a FIFO for writing, without blocking, while it has no
/// reader.
const ENXIO: i32 = 6;

/// Opens the FIFO's writing end without blocking: fails with `ENXIO` while
/// nobody has it open for reading.
fn try_open_writer(path: &Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
}

/// Waits (a fiber's sleep at a time) until someone opens the FIFO for
/// reading, and returns its writing end (non-blocking).
fn writer_once_read(path: &Path) -> fuseau_tokio::Result<std::fs::File> {
    loop {
        match try_open_writer(path) {
            Ok(w) => return Ok(w),
            Err(e) if e.raw_os_error() == Some(ENXIO) => fuseau_tokio::sleep(ms(1))?,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits until nobody has the FIFO open for reading any more.
fn until_no_reader(path: &Path) -> fuseau_tokio::Result<()> {
    loop {
        match try_open_writer(path) {
            Ok(_) => fuseau_tokio::sleep(ms(1))?,
            Err(e) if e.raw_os_error() == Some(ENXIO) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads what the non-blocking `r` has now (`None` at end of file).
fn drain_now(mut r: &std::fs::File, out: &mut Vec<u8>) -> Option<()> {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(()),
            Err(e) => panic!("{e}"),
        }
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

// -------------------------------------------------------------- round trips

#[test]
#[cfg_attr(miri, ignore)]
fn whole_files_round_trip() {
    let dir = TempDir::new("whole");
    let d = dir.path().to_owned();
    bounded::main(move || {
        let path = d.join("file");
        fs::write(&path, "first")?;
        assert_eq!(fs::read(&path)?, b"first");
        fs::write(&path, b"second")?;
        assert_eq!(fs::read_to_string(&path)?, "second");
        assert_eq!(fs::metadata(&path)?.len(), 6);
        assert!(fs::metadata(&path)?.is_file());
        assert!(fs::metadata(&d)?.is_dir());
        // As with std: not UTF-8 is InvalidData.
        fs::write(&path, [0xff, 0xfe])?;
        let e = fs::read_to_string(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        // Agrees with std on what is on the disk.
        fs::write(&path, pattern(100_000))?;
        assert_eq!(std::fs::read(&path)?, pattern(100_000));
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn directories_round_trip() {
    let dir = TempDir::new("dirs");
    let d = dir.path().to_owned();
    bounded::main(move || {
        fs::create_dir_all(d.join("a/b/c"))?;
        fs::create_dir_all(d.join("a/b/c"))?; // exists already: fine
        fs::create_dir(d.join("empty"))?;
        let e = fs::create_dir(d.join("empty")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        fs::write(d.join("file"), "12345")?;

        let mut entries: Vec<_> = fs::read_dir(&d)?.collect::<io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        let names: Vec<_> = entries.iter().map(|e| e.file_name()).collect();
        assert_eq!(names, ["a", "empty", "file"]);
        assert_eq!(entries[2].path(), d.join("file"));
        assert!(entries[0].file_type()?.is_dir());
        assert!(entries[2].file_type()?.is_file());
        assert_eq!(entries[2].metadata()?.len(), 5);
        assert_eq!(fs::read_dir(d.join("empty"))?.count(), 0);

        fs::rename(d.join("file"), d.join("renamed"))?;
        assert_eq!(fs::copy(d.join("renamed"), d.join("copy"))?, 5);
        assert_eq!(fs::read(d.join("copy"))?, b"12345");
        fs::remove_file(d.join("renamed"))?;
        fs::remove_dir(d.join("empty"))?;
        let e = fs::remove_dir(d.join("a")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::DirectoryNotEmpty);
        fs::remove_dir_all(d.join("a"))?;
        let left: Vec<_> = fs::read_dir(&d)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        assert_eq!(left, ["copy"]);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn missing_paths_are_not_found_as_with_std() {
    let dir = TempDir::new("missing");
    let d = dir.path().to_owned();
    bounded::main(move || {
        let missing = d.join("missing");
        let std_kind = std::fs::read(&missing).unwrap_err().kind();
        assert_eq!(std_kind, io::ErrorKind::NotFound);
        assert_eq!(fs::read(&missing).unwrap_err().kind(), std_kind);
        assert_eq!(fs::read_to_string(&missing).unwrap_err().kind(), std_kind);
        assert_eq!(fs::metadata(&missing).unwrap_err().kind(), std_kind);
        assert_eq!(fs::remove_file(&missing).unwrap_err().kind(), std_kind);
        assert_eq!(fs::read_dir(&missing).unwrap_err().kind(), std_kind);
        assert_eq!(File::open(&missing).unwrap_err().kind(), std_kind);
        let e = fs::write(d.join("no/such/dir/file"), "x").unwrap_err();
        assert_eq!(e.kind(), std_kind);
        // The error is std's own, message included.
        let e = File::open(&missing).unwrap_err();
        assert_eq!(
            e.to_string(),
            std::fs::File::open(&missing).unwrap_err().to_string()
        );
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_file_reads_writes_and_seeks() {
    let dir = TempDir::new("seek");
    let path = dir.join("file");
    bounded::main(move || {
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        file.write_all(b"hello, world")?;
        assert_eq!(file.stream_position()?, 12);
        assert_eq!(file.seek(SeekFrom::Start(7))?, 7);
        let mut word = [0u8; 5];
        file.read_exact(&mut word)?;
        assert_eq!(&word, b"world");
        assert_eq!(file.read(&mut word)?, 0, "end of file");
        assert_eq!(file.seek(SeekFrom::Current(-5))?, 7);
        assert_eq!(file.seek(SeekFrom::End(-12))?, 0);
        let e = file.seek(SeekFrom::Current(-1)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // Overwrite in the middle.
        file.seek(SeekFrom::Start(0))?;
        file.write_all(b"HELLO")?;
        file.flush()?;
        file.sync_all()?;
        file.sync_data()?;
        assert_eq!(fs::read(&path)?, b"HELLO, world");
        // set_len does not move the position.
        file.set_len(5)?;
        assert_eq!(file.metadata()?.len(), 5);
        assert_eq!(file.stream_position()?, 5);
        // A clone shares the position.
        let mut clone = file.try_clone()?;
        clone.seek(SeekFrom::Start(1))?;
        let mut rest = String::new();
        file.read_to_string(&mut rest)?;
        assert_eq!(rest, "ELLO");
        // Read-only: writing fails as with std.
        let mut ro = File::open(&path)?;
        assert!(ro.write_all(b"no").is_err());
        let mut text = String::new();
        ro.read_to_string(&mut text)?;
        assert_eq!(text, "HELLO");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn buffered_lines_and_large_files_go_through_intact() {
    let dir = TempDir::new("large");
    let d = dir.path().to_owned();
    bounded::main(move || {
        let mut out = BufWriter::new(File::create(d.join("lines"))?);
        for i in 0..10_000 {
            writeln!(out, "line {i}")?;
        }
        out.flush()?;
        drop(out);
        let lines: Vec<String> = BufReader::new(File::open(d.join("lines"))?)
            .lines()
            .collect::<io::Result<_>>()?;
        assert_eq!(lines.len(), 10_000);
        assert_eq!(lines[9_999], "line 9999");

        // More than Tokio's 2 MiB per operation, both ways.
        let data = pattern(5 << 20);
        let mut file = File::create(d.join("large"))?;
        file.write_all(&data)?;
        drop(file);
        let mut back = Vec::new();
        File::open(d.join("large"))?.read_to_end(&mut back)?;
        assert!(back == data, "the data changed on the way");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn open_options_append_and_create_new() {
    let dir = TempDir::new("options");
    let path = dir.join("log");
    bounded::main(move || {
        let mut first = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        first.write_all(b"one")?;
        let e = File::create_new(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        let mut log = OpenOptions::new().append(true).open(&path)?;
        log.write_all(b" two")?;
        // Append mode writes at the end, wherever the position is.
        log.seek(SeekFrom::Start(0))?;
        log.write_all(b" three")?;
        assert_eq!(fs::read_to_string(&path)?, "one two three");
        let e = OpenOptions::new().open(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn outside_a_fiber_calls_are_not_in_fiber_and_do_nothing() {
    let dir = TempDir::new("outside");
    let path = dir.join("file");
    let e = fs::write(&path, "x").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::Other);
    let e = fiber_error(e);
    assert_eq!(e.kind(), ErrorKind::NotInFiber);
    assert!(e.to_string().contains("fs::write"), "{e}");
    assert!(!path.exists());
    // A File made outside a fiber fails the same way, without panicking.
    std::fs::write(&path, "x").unwrap();
    let mut file = File::from_std(std::fs::File::open(&path).unwrap());
    let e = fiber_error(file.read(&mut [0; 4]).unwrap_err());
    assert_eq!(e.kind(), ErrorKind::NotInFiber);
    assert_eq!(
        fiber_error(file.metadata().unwrap_err()).kind(),
        ErrorKind::NotInFiber
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn in_a_fiber_without_tokio_calls_are_errors_not_panics() {
    let dir = TempDir::new("no-tokio");
    let path = dir.join("file");
    std::fs::write(&path, "x").unwrap();
    fuseau_tokio::block_on(move || {
        let e = fiber_error(fs::read(&path).unwrap_err());
        assert_eq!(e.kind(), ErrorKind::Other);
        let mut file = File::from_std(std::fs::File::open(&path)?);
        let e = fiber_error(file.read(&mut [0; 4]).unwrap_err());
        assert_eq!(e.kind(), ErrorKind::Other);
        assert!(e.to_string().contains("Tokio runtime"), "{e}");
        Ok(())
    })
    .unwrap();
}

// ------------------------------------------------ cancellation: fs::read

#[test]
#[cfg_attr(miri, ignore)]
fn read_cancelled_before_the_call_fails_and_write_writes_nothing() {
    let dir = TempDir::new("cancel-before");
    let d = dir.path().to_owned();
    bounded::main(move || {
        fs::write(d.join("file"), "data")?;
        let d2 = d.clone();
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                AnyFiber::current().cancel();
                let e = fiber_error(fs::read(d2.join("file")).unwrap_err());
                assert!(e.is_cancelled());
                let e = fiber_error(fs::write(d2.join("new"), "never").unwrap_err());
                assert!(e.is_cancelled());
                let e = fiber_error(fs::remove_file(d2.join("file")).unwrap_err());
                Err::<(), _>(e)
            });
        assert!(fiber.join().unwrap_err().is_cancelled());
        assert!(
            !d.join("new").exists(),
            "a cancelled write created the file"
        );
        assert_eq!(
            fs::read(d.join("file"))?,
            b"data",
            "a cancelled remove removed"
        );
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn read_cancelled_while_waiting_returns_at_once_and_the_read_runs_on() {
    let dir = TempDir::new("read-cancel-waiting");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        let (f2, l2) = (fifo.clone(), l.clone());
        let reader = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                // Blocks on the pool until a writer comes and goes.
                let e = fiber_error(fs::read(&f2).unwrap_err());
                l2.push(format!("read: {:?}", e.kind()));
                Err::<(), _>(e)
            });
        // The pool thread has the FIFO open, and waits in `read`.
        let mut writer = writer_once_read(&fifo)?;
        l.push("cancel");
        reader.cancel();
        // Returns while the pool's read still waits (for the writer to
        // write and close, which comes only after the join).
        assert!(reader.join().unwrap_err().is_cancelled());
        l.push("joined");
        writer.write_all(b"late")?;
        drop(writer);
        // The read ran on to its end, and closed the FIFO.
        until_no_reader(&fifo)?;
        l.push("the read finished");
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["cancel", "read: Cancelled", "joined", "the read finished"]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn read_cancelled_after_it_returned_keeps_the_data() {
    let dir = TempDir::new("read-cancel-after");
    let path = dir.join("file");
    bounded::main(move || {
        fs::write(&path, "kept")?;
        let fiber = fuseau_tokio::spawn(move || {
            let data = fs::read(&path)?;
            AnyFiber::current().cancel();
            let e = fiber_error(fs::read(&path).unwrap_err());
            assert!(e.is_cancelled());
            Ok(data)
        });
        assert_eq!(fiber.join()?, b"kept");
        Ok(())
    })
    .unwrap();
}

// ----------------------------------------------- cancellation: File::read

#[test]
#[cfg_attr(miri, ignore)]
fn file_read_cancelled_before_the_call_moves_nothing() {
    let dir = TempDir::new("file-read-before");
    let path = dir.join("file");
    bounded::main(move || {
        fs::write(&path, "abcdef")?;
        let file = Rc::new(RefCell::new(File::open(&path)?));
        let f2 = file.clone();
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                AnyFiber::current().cancel();
                let e = f2.borrow_mut().read(&mut [0; 3]).unwrap_err();
                Err::<(), _>(fiber_error(e))
            });
        assert!(fiber.join().unwrap_err().is_cancelled());
        let mut all = String::new();
        file.borrow_mut().read_to_string(&mut all)?;
        assert_eq!(all, "abcdef");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn file_read_cancelled_while_waiting_keeps_its_bytes_for_the_next_read() {
    let dir = TempDir::new("file-read-waiting");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        // A reading end that blocks (as a File's must), with a writer.
        let keep_open = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(O_NONBLOCK)
            .open(&fifo)?;
        let mut writer = try_open_writer(&fifo)?;
        let file = Rc::new(RefCell::new(File::open(&fifo)?));
        drop(keep_open);
        let (f2, l2) = (file.clone(), l.clone());
        let reader = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                let mut buf = [0u8; 16];
                let e = fiber_error(f2.borrow_mut().read(&mut buf).unwrap_err());
                l2.push(format!("read: {:?}", e.kind()));
                Err::<(), _>(e)
            });
        fuseau_tokio::yield_now()?;
        l.push("cancel");
        reader.cancel();
        assert!(reader.join().unwrap_err().is_cancelled());
        l.push("joined");
        // The read still waits on the pool; what it gets is the File's.
        writer.write_all(b"late")?;
        drop(writer);
        let mut got = Vec::new();
        file.borrow_mut().read_to_end(&mut got)?;
        assert_eq!(got, b"late");
        Ok(())
    })
    .unwrap();
    assert_eq!(log.take(), ["cancel", "read: Cancelled", "joined"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn file_reads_cancelled_at_random_points_neither_lose_nor_repeat_bytes() {
    let dir = TempDir::new("file-read-random");
    let path = dir.join("file");
    let data = pattern(4096);
    std::fs::write(&path, &data).unwrap();
    bounded::main(move || {
        let file = Rc::new(RefCell::new(File::open(&path)?));
        let got = Rc::new(RefCell::new(Vec::new()));
        let mut cancelled = 0;
        for round in 0.. {
            assert!(round < 100_000, "no progress");
            let (f2, g2) = (file.clone(), got.clone());
            let reader = Builder::new()
                .propagate_cancel_to_parent(false)
                .spawn(move || loop {
                    let mut buf = [0u8; 7];
                    let n = f2.borrow_mut().read(&mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    g2.borrow_mut().extend_from_slice(&buf[..n]);
                });
            for _ in 0..round % 3 {
                fuseau_tokio::yield_now()?;
            }
            reader.cancel();
            match reader.join() {
                Ok(()) => break,
                Err(e) if e.is_cancelled() => cancelled += 1,
                Err(e) => return Err(e),
            }
        }
        assert!(cancelled > 0);
        assert!(*got.borrow() == data, "bytes were lost or repeated");
        // The position agrees: at the end.
        assert_eq!(file.borrow_mut().stream_position()?, 4096);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn file_read_cancelled_after_it_returned_keeps_the_bytes() {
    let dir = TempDir::new("file-read-after");
    let path = dir.join("file");
    bounded::main(move || {
        fs::write(&path, "abcdef")?;
        let file = Rc::new(RefCell::new(File::open(&path)?));
        let f2 = file.clone();
        let fiber = fuseau_tokio::spawn(move || {
            let mut buf = [0u8; 3];
            f2.borrow_mut().read_exact(&mut buf)?;
            AnyFiber::current().cancel();
            let e = fiber_error(f2.borrow_mut().read(&mut [0; 3]).unwrap_err());
            assert!(e.is_cancelled());
            Ok(buf)
        });
        assert_eq!(&fiber.join()?, b"abc");
        let mut rest = String::new();
        file.borrow_mut().read_to_string(&mut rest)?;
        assert_eq!(rest, "def");
        Ok(())
    })
    .unwrap();
}

// ---------------------------------------------- cancellation: File::write

#[test]
#[cfg_attr(miri, ignore)]
fn file_write_cancelled_before_the_call_writes_nothing() {
    let dir = TempDir::new("file-write-before");
    let path = dir.join("file");
    bounded::main(move || {
        let file = Rc::new(RefCell::new(File::create(&path)?));
        let f2 = file.clone();
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                AnyFiber::current().cancel();
                let e = f2.borrow_mut().write(b"never").unwrap_err();
                Err::<(), _>(fiber_error(e))
            });
        assert!(fiber.join().unwrap_err().is_cancelled());
        assert_eq!(fs::metadata(&path)?.len(), 0);
        file.borrow_mut().write_all(b"later")?;
        assert_eq!(fs::read(&path)?, b"later");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn file_write_cancelled_while_waiting_commits_its_bytes() {
    let dir = TempDir::new("file-write-waiting");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(O_NONBLOCK)
            .open(&fifo)?;
        let file = Rc::new(RefCell::new(OpenOptions::new().write(true).open(&fifo)?));
        // Far more than the pipe holds: the write waits for the reader.
        let data = pattern(1 << 20);
        let written = Rc::new(Cell::new(0));
        let (f2, l2, w2, d2) = (file.clone(), l.clone(), written.clone(), data.clone());
        let writer = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                let mut file = f2.borrow_mut();
                let n = file.write(&d2)?;
                w2.set(n);
                l2.push(format!("write: Ok({n})"));
                let e = fiber_error(file.flush().unwrap_err());
                l2.push(format!("flush: {:?}", e.kind()));
                Err::<(), _>(e)
            });
        fuseau_tokio::yield_now()?;
        l.push("cancel");
        writer.cancel();
        assert!(writer.join().unwrap_err().is_cancelled());
        // The committed bytes land in the background, all of them.
        let n = written.get();
        assert_eq!(n, data.len());
        let mut got = Vec::new();
        while got.len() < n {
            assert!(drain_now(&reader, &mut got).is_some(), "end of file");
            fuseau_tokio::sleep(ms(1))?;
        }
        assert!(got == data, "the data changed on the way");
        // The File goes on where the write left it.
        file.borrow_mut().write_all(b"tail")?;
        got.clear();
        while got.len() < 4 {
            drain_now(&reader, &mut got);
            fuseau_tokio::sleep(ms(1))?;
        }
        assert_eq!(got, b"tail");
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["cancel", "write: Ok(1048576)", "flush: Cancelled"]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn file_write_cancelled_after_it_returned_keeps_the_bytes() {
    let dir = TempDir::new("file-write-after");
    let path = dir.join("file");
    bounded::main(move || {
        let file = Rc::new(RefCell::new(File::create(&path)?));
        let f2 = file.clone();
        let fiber = fuseau_tokio::spawn(move || {
            f2.borrow_mut().write_all(b"abc")?;
            AnyFiber::current().cancel();
            let e = fiber_error(f2.borrow_mut().write(b"def").unwrap_err());
            assert!(e.is_cancelled());
            Ok(())
        });
        fiber.join()?;
        assert_eq!(fs::read(&path)?, b"abc");
        assert_eq!(file.borrow_mut().stream_position()?, 3);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn seek_cancelled_before_the_call_moves_nothing() {
    let dir = TempDir::new("seek-before");
    let path = dir.join("file");
    bounded::main(move || {
        fs::write(&path, "abcdef")?;
        let file = Rc::new(RefCell::new(File::open(&path)?));
        let f2 = file.clone();
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                AnyFiber::current().cancel();
                let e = f2.borrow_mut().seek(SeekFrom::Start(3)).unwrap_err();
                Err::<(), _>(fiber_error(e))
            });
        assert!(fiber.join().unwrap_err().is_cancelled());
        assert_eq!(file.borrow_mut().stream_position()?, 0);
        Ok(())
    })
    .unwrap();
}

#[test]
fn the_types_are_send_and_sync_as_std_s() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<File>();
    send_sync::<OpenOptions>();
    send_sync::<fs::ReadDir>();
    send_sync::<fs::DirEntry>();
    send_sync::<fs::Metadata>();
}
