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

use common::{
    assert_joins_cancelled, assert_same_bytes, cancel_logged_while_waiting, cancel_then_next_fails,
    cancellable, cancelled_before, ms, pattern, Log, TempDir,
};
use fuseau_tokio::fs::{self, File, OpenOptions};
use fuseau_tokio::{Error, ErrorKind};

/// Runs `body` as the main fiber (under the watchdog), given a directory of
/// its own (named after `name`), removed afterwards.
fn in_temp_dir(name: &str, body: impl FnOnce(PathBuf) -> fuseau_tokio::Result<()> + 'static) {
    let dir = TempDir::new(&format!("fs-{name}"));
    let d = dir.path().to_owned();
    bounded::main(move || body(d)).unwrap();
}

/// A `File` that a test and a fiber it cancels both use.
fn shared(file: File) -> Rc<RefCell<File>> {
    Rc::new(RefCell::new(file))
}

/// Writes `contents` to the file `file` in `dir`, and opens it (shared) for
/// reading.
fn open_shared(dir: &Path, contents: &str) -> fuseau_tokio::Result<Rc<RefCell<File>>> {
    let path = dir.join("file");
    fs::write(&path, contents)?;
    Ok(shared(File::open(&path)?))
}

/// The fiber's error inside an `io::Error` from `fs`.
fn fiber_error(e: io::Error) -> Error {
    Error::from(e)
}

/// Makes a FIFO (named pipe) `fifo` in `dir`, and returns its path.
fn mkfifo(dir: &Path) -> PathBuf {
    let path = dir.join("fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo failed: {status:?}");
    path
}

/// `O_NONBLOCK` on Linux.
const O_NONBLOCK: i32 = 0o4000;
/// `ENXIO`: opening a FIFO for writing, without blocking, while it has no
/// reader.
const ENXIO: i32 = 6;

/// Opens the FIFO's reading end without blocking (nor waiting for a
/// writer).
fn nonblocking_reader(path: &Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
}

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

/// Reads from the non-blocking `r` (a fiber's sleep at a time) until `n`
/// bytes came; the writer must not close it before.
fn read_at_least(mut r: &std::fs::File, n: usize) -> fuseau_tokio::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    while out.len() < n {
        match r.read(&mut buf) {
            Ok(0) => panic!("end of file after {} bytes", out.len()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => fuseau_tokio::sleep(ms(1))?,
            Err(e) => panic!("{e}"),
        }
    }
    Ok(out)
}

// -------------------------------------------------------------- round trips

#[test]
#[cfg_attr(miri, ignore)]
fn whole_files_round_trip() {
    in_temp_dir("whole", |d| {
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
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn directories_round_trip() {
    in_temp_dir("dirs", |d| {
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
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn missing_paths_are_not_found_as_with_std() {
    in_temp_dir("missing", |d| {
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
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_file_reads_writes_and_seeks() {
    in_temp_dir("seek", |d| {
        let path = d.join("file");
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
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn buffered_lines_and_large_files_go_through_intact() {
    in_temp_dir("large", |d| {
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
        assert_same_bytes(&back, &data);
        Ok(())
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn open_options_append_and_create_new() {
    in_temp_dir("options", |d| {
        let path = d.join("log");
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
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn outside_a_fiber_calls_are_not_in_fiber_and_do_nothing() {
    let dir = TempDir::new("fs-outside");
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
    let dir = TempDir::new("fs-no-tokio");
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
    in_temp_dir("cancel-before", |d| {
        fs::write(d.join("file"), "data")?;
        let d2 = d.clone();
        cancelled_before(move || {
            common::assert_cancelled(fs::read(d2.join("file")));
            common::assert_cancelled(fs::write(d2.join("new"), "never"));
            fs::remove_file(d2.join("file"))
        });
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
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn read_cancelled_while_waiting_returns_at_once_and_the_read_runs_on() {
    let log = Log::new();
    let l = log.clone();
    in_temp_dir("read-cancel-waiting", move |d| {
        let fifo = mkfifo(&d);
        let f2 = fifo.clone();
        // The read blocks on the pool until a writer comes and goes; it is
        // cancelled once the pool thread has the FIFO open, and returns while
        // the pool's read still waits (for the writer to write and close,
        // which comes only after the join).
        let mut writer = cancel_logged_while_waiting(
            &l,
            "read",
            move || fs::read(&f2),
            || writer_once_read(&fifo),
        )?;
        l.push("joined");
        writer.write_all(b"late")?;
        drop(writer);
        // The read ran on to its end, and closed the FIFO.
        until_no_reader(&fifo)?;
        l.push("the read finished");
        Ok(())
    });
    assert_eq!(
        log.take(),
        [
            "read",
            "cancel",
            "read: Cancelled",
            "joined",
            "the read finished"
        ]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn read_cancelled_after_it_returned_keeps_the_data() {
    in_temp_dir("read-cancel-after", |d| {
        let path = d.join("file");
        fs::write(&path, "kept")?;
        let fiber = fuseau_tokio::spawn(move || {
            let data = fs::read(&path)?;
            cancel_then_next_fails(|| fs::read(&path));
            Ok(data)
        });
        assert_eq!(fiber.join()?, b"kept");
        Ok(())
    });
}

// ----------------------------------------------- cancellation: File::read

#[test]
#[cfg_attr(miri, ignore)]
fn file_read_cancelled_before_the_call_moves_nothing() {
    in_temp_dir("file-read-before", |d| {
        let file = open_shared(&d, "abcdef")?;
        let f2 = file.clone();
        cancelled_before(move || f2.borrow_mut().read(&mut [0; 3]));
        let mut all = String::new();
        file.borrow_mut().read_to_string(&mut all)?;
        assert_eq!(all, "abcdef");
        Ok(())
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn file_read_cancelled_while_waiting_keeps_its_bytes_for_the_next_read() {
    let log = Log::new();
    let l = log.clone();
    in_temp_dir("file-read-waiting", move |d| {
        let fifo = mkfifo(&d);
        // A reading end that blocks (as a File's must), with a writer.
        let keep_open = nonblocking_reader(&fifo)?;
        let mut writer = try_open_writer(&fifo)?;
        let file = shared(File::open(&fifo)?);
        drop(keep_open);
        let f2 = file.clone();
        cancel_logged_while_waiting(
            &l,
            "read",
            move || f2.borrow_mut().read(&mut [0u8; 16]),
            fuseau_tokio::yield_now,
        )?;
        l.push("joined");
        // The read still waits on the pool; what it gets is the File's.
        writer.write_all(b"late")?;
        drop(writer);
        let mut got = Vec::new();
        file.borrow_mut().read_to_end(&mut got)?;
        assert_eq!(got, b"late");
        Ok(())
    });
    assert_eq!(log.take(), ["read", "cancel", "read: Cancelled", "joined"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn file_reads_cancelled_at_random_points_neither_lose_nor_repeat_bytes() {
    in_temp_dir("file-read-random", |d| {
        let path = d.join("file");
        let data = pattern(4096);
        std::fs::write(&path, &data)?;
        let file = shared(File::open(&path)?);
        let got = Rc::new(RefCell::new(Vec::new()));
        let mut cancelled = 0;
        for round in 0.. {
            assert!(round < 100_000, "no progress");
            let (f2, g2) = (file.clone(), got.clone());
            let reader = cancellable(move || loop {
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
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn file_read_cancelled_after_it_returned_keeps_the_bytes() {
    in_temp_dir("file-read-after", |d| {
        let file = open_shared(&d, "abcdef")?;
        let f2 = file.clone();
        let fiber = fuseau_tokio::spawn(move || {
            let mut buf = [0u8; 3];
            f2.borrow_mut().read_exact(&mut buf)?;
            cancel_then_next_fails(|| f2.borrow_mut().read(&mut [0; 3]));
            Ok(buf)
        });
        assert_eq!(&fiber.join()?, b"abc");
        let mut rest = String::new();
        file.borrow_mut().read_to_string(&mut rest)?;
        assert_eq!(rest, "def");
        Ok(())
    });
}

// ---------------------------------------------- cancellation: File::write

#[test]
#[cfg_attr(miri, ignore)]
fn file_write_cancelled_before_the_call_writes_nothing() {
    in_temp_dir("file-write-before", |d| {
        let path = d.join("file");
        let file = shared(File::create(&path)?);
        let f2 = file.clone();
        cancelled_before(move || f2.borrow_mut().write(b"never"));
        assert_eq!(fs::metadata(&path)?.len(), 0);
        file.borrow_mut().write_all(b"later")?;
        assert_eq!(fs::read(&path)?, b"later");
        Ok(())
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn file_write_cancelled_while_waiting_commits_its_bytes() {
    let log = Log::new();
    let l = log.clone();
    in_temp_dir("file-write-waiting", move |d| {
        let fifo = mkfifo(&d);
        let reader = nonblocking_reader(&fifo)?;
        let file = shared(OpenOptions::new().write(true).open(&fifo)?);
        // Far more than the pipe holds: the write waits for the reader.
        let data = pattern(1 << 20);
        let written = Rc::new(Cell::new(0));
        let (f2, l2, w2, d2) = (file.clone(), l.clone(), written.clone(), data.clone());
        let writer = cancellable(move || {
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
        assert_joins_cancelled(writer);
        // The committed bytes land in the background, all of them.
        assert_eq!(written.get(), data.len());
        assert_same_bytes(&read_at_least(&reader, data.len())?, &data);
        // The File goes on where the write left it.
        file.borrow_mut().write_all(b"tail")?;
        assert_eq!(read_at_least(&reader, 4)?, b"tail");
        Ok(())
    });
    assert_eq!(
        log.take(),
        ["cancel", "write: Ok(1048576)", "flush: Cancelled"]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn file_write_cancelled_after_it_returned_keeps_the_bytes() {
    in_temp_dir("file-write-after", |d| {
        let path = d.join("file");
        let file = shared(File::create(&path)?);
        let f2 = file.clone();
        let fiber = fuseau_tokio::spawn(move || {
            f2.borrow_mut().write_all(b"abc")?;
            cancel_then_next_fails(|| f2.borrow_mut().write(b"def"));
            Ok(())
        });
        fiber.join()?;
        assert_eq!(fs::read(&path)?, b"abc");
        assert_eq!(file.borrow_mut().stream_position()?, 3);
        Ok(())
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn seek_cancelled_before_the_call_moves_nothing() {
    in_temp_dir("seek-before", |d| {
        let file = open_shared(&d, "abcdef")?;
        let f2 = file.clone();
        cancelled_before(move || f2.borrow_mut().seek(SeekFrom::Start(3)));
        assert_eq!(file.borrow_mut().stream_position()?, 0);
        Ok(())
    });
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
