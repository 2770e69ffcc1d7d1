//! Capture input through libpcap (the `pcap` crate): pcap and pcapng files,
//! BPF filters, and live capture from an interface, all handing frames to
//! the same code path as [`RawPacket`]s.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::packet::{RawPacket, Timestamp};

/// What went wrong with a capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be opened or is not a capture.
    #[error("{}: cannot open capture: {message}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// libpcap's words.
        message: String,
    },
    /// The live interface could not be opened.
    #[error(
        "interface {iface}: cannot capture: {message} (live capture needs root or CAP_NET_RAW)"
    )]
    Live {
        /// The interface.
        iface: String,
        /// libpcap's words.
        message: String,
    },
    /// The BPF filter did not compile.
    #[error("{source_name}: bad BPF filter {filter:?}: {message}")]
    Filter {
        /// The capture or interface.
        source_name: String,
        /// The filter.
        filter: String,
        /// libpcap's words.
        message: String,
    },
    /// Reading stopped in the middle of the capture (truncated file, bad
    /// record). The frames read before it were processed.
    #[error("{source_name}: capture ends in the middle of a record after {frames} frames ({message}); the flows read so far are reported")]
    Read {
        /// The capture or interface.
        source_name: String,
        /// Frames read before the error.
        frames: u64,
        /// libpcap's words.
        message: String,
    },
}

/// libpcap's stdio stream of an offline capture (`pcap_file`), or None.
#[cfg(unix)]
fn stream_of(cap: &pcap::Capture<pcap::Offline>) -> Option<*mut libc::FILE> {
    extern "C" {
        fn pcap_file(p: *mut libc::c_void) -> *mut libc::FILE;
    }
    // SAFETY: `as_ptr` is the live handle `cap` owns; `pcap_file` only
    // returns its stream (null for a handle without one).
    let fp = unsafe { pcap_file(cap.as_ptr().cast()) };
    (!fp.is_null()).then_some(fp)
}

/// Reading a file, libpcap calls `fread` twice a frame, and once the process
/// has a second thread glibc locks and unlocks the stream on every call (a
/// tenth of the read floor's time on 10M frames, `README.md`'s
/// Performance). The stream is libpcap's own and is read only through the
/// [`Capture`] that holds it, by `&mut self` (a `Capture` can move between
/// threads but not be shared), so no two threads ever use it at once: the
/// locking is left to the caller, which needs none.
fn leave_stream_unlocked(cap: &pcap::Capture<pcap::Offline>) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn __fsetlocking(fp: *mut libc::FILE, kind: libc::c_int) -> libc::c_int;
        }
        /// `FSETLOCKING_BYCALLER` of glibc's `<stdio_ext.h>`.
        const FSETLOCKING_BYCALLER: libc::c_int = 2;
        if let Some(fp) = stream_of(cap) {
            // SAFETY: `fp` is the live stream of the handle `cap` owns;
            // `__fsetlocking` only sets its locking mode. Nothing reads the
            // stream but this handle's reads, which are serialised as
            // above.
            unsafe {
                __fsetlocking(fp, FSETLOCKING_BYCALLER);
            }
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = cap;
}

/// The stdio buffer libpcap reads a capture file through, or the file's
/// size rounded up to a page when that is smaller (project: glibc gives a
/// file stream the file system's block size, 4 KiB on ext4, so that
/// reading made a `read` system call every few frames, and the calls' own
/// cost, not the copy, was a third of the read floor; with 1 MiB the floor
/// of a 1.4 GB link mix went from 0.40 s to 0.26 s, and 64 KiB or 256 KiB
/// read a few percent slower: `README.md`'s Performance, "2026-12-04,
/// reading in larger blocks").
pub const FILE_READ_BUFFER: usize = 1 << 20;

/// A buffer handed to libpcap's file stream ([`read_in_blocks`]): kept
/// until the stream is closed, which the [`Capture`] that holds both
/// does first (its fields drop in order).
struct StreamBuffer(#[allow(dead_code)] Box<[u8]>);

/// Makes libpcap's stream of a regular file read `bytes` at a time instead
/// of the file system's block size, and returns the buffer it reads into.
/// None leaves the stream as it was: for the standard input, a file that
/// is not a regular one (a pipe), `bytes` no larger than the stream's own,
/// or off glibc. libpcap has read the file's header already; glibc's
/// `setvbuf` on a stream read from first puts the unread bytes back (it
/// seeks the file back by them) and then reads through the new buffer, so
/// no byte is lost or read twice, and only a file that can seek gets one.
fn read_in_blocks(cap: &pcap::Capture<pcap::Offline>, bytes: usize) -> Option<StreamBuffer> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let fp = stream_of(cap)?;
        // SAFETY: `fp` is the live stream of the handle `cap` owns.
        // `fileno` and `fstat` only read its descriptor's status.
        // `setvbuf` is given a buffer that lives until the stream is
        // closed (the `Capture` drops its handle before the buffer), on a
        // regular file, which can seek back over what the old buffer held.
        unsafe {
            // Not the standard input ("-"): libpcap leaves it open at the
            // end, and it would keep a buffer the capture frees.
            let fd = libc::fileno(fp);
            let mut st: libc::stat = std::mem::zeroed();
            if fd <= libc::STDERR_FILENO
                || libc::fstat(fd, &mut st) != 0
                || st.st_mode & libc::S_IFMT != libc::S_IFREG
            {
                return None;
            }
            // No larger than the file (rounded up to a page): a small
            // capture needs no megabyte.
            let size = usize::try_from(st.st_size).unwrap_or(usize::MAX);
            let bytes = bytes.min(size.saturating_add(4095) & !4095);
            if bytes <= usize::try_from(st.st_blksize).unwrap_or(0) {
                return None;
            }
            let mut buf = vec![0u8; bytes].into_boxed_slice();
            if libc::setvbuf(fp, buf.as_mut_ptr().cast(), libc::_IOFBF, buf.len()) != 0 {
                return None;
            }
            Some(StreamBuffer(buf))
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = (cap, bytes);
        None
    }
}

/// The position of libpcap's file stream (`ftell`).
fn file_position(cap: &pcap::Capture<pcap::Offline>) -> Option<u64> {
    #[cfg(unix)]
    {
        let fp = stream_of(cap)?;
        // SAFETY: `fp` is the live stream of the handle `cap` owns; `ftell`
        // only reads its position. The stream is read only through this
        // handle, by `&mut self`, never while `&self` is held here.
        u64::try_from(unsafe { libc::ftell(fp) }).ok()
    }
    #[cfg(not(unix))]
    {
        let _ = cap;
        None
    }
}

/// Where frames come from.
pub enum CaptureSource {
    /// A pcap or pcapng file.
    File(pcap::Capture<pcap::Offline>),
    /// A live interface.
    Live(pcap::Capture<pcap::Active>),
}

/// An open capture.
pub struct Capture {
    source: CaptureSource,
    /// The buffer libpcap's file stream reads into, if it was given one;
    /// after `source`, so that it outlives the stream.
    _read_buffer: Option<StreamBuffer>,
    name: String,
    link_type: u32,
    frames: u64,
    deadline: Option<std::time::Instant>,
    stop: Option<&'static AtomicBool>,
    progress: Option<ProgressFn>,
}

/// A progress callback: frames read, bytes read (files).
type ProgressFn = Box<dyn FnMut(u64, Option<u64>) + Send>;

impl Capture {
    /// Opens a capture file, with an optional BPF filter, read in blocks
    /// of [`FILE_READ_BUFFER`] bytes.
    pub fn open_file(path: &Path, filter: Option<&str>) -> Result<Capture, CaptureError> {
        Capture::open_file_reading(path, filter, FILE_READ_BUFFER)
    }

    /// [`Capture::open_file`], reading the file `read_buffer` bytes at a
    /// time (0, or no more than the file system's block size: as libpcap
    /// reads by itself).
    pub fn open_file_reading(
        path: &Path,
        filter: Option<&str>,
        read_buffer: usize,
    ) -> Result<Capture, CaptureError> {
        let mut cap = pcap::Capture::from_file(path).map_err(|e| CaptureError::Open {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let name = path.display().to_string();
        if let Some(f) = filter {
            cap.filter(f, true).map_err(|e| CaptureError::Filter {
                source_name: name.clone(),
                filter: f.to_string(),
                message: e.to_string(),
            })?;
        }
        let link_type = cap.get_datalink().0 as u32;
        leave_stream_unlocked(&cap);
        let read_buffer = read_in_blocks(&cap, read_buffer);
        Ok(Capture {
            source: CaptureSource::File(cap),
            _read_buffer: read_buffer,
            name,
            link_type,
            frames: 0,
            deadline: None,
            stop: None,
            progress: None,
        })
    }

    /// Opens a live capture on `iface` (promiscuous, immediate mode).
    pub fn open_live(iface: &str, filter: Option<&str>) -> Result<Capture, CaptureError> {
        let err = |e: pcap::Error| CaptureError::Live {
            iface: iface.to_string(),
            message: e.to_string(),
        };
        let mut cap = pcap::Capture::from_device(iface)
            .map_err(err)?
            .promisc(true)
            .immediate_mode(true)
            .timeout(100)
            .open()
            .map_err(err)?
            // Non-blocking: an idle link returns at once, so that a deadline
            // is honoured even when no packet arrives (libpcap's read timeout
            // need not fire on an idle Linux socket).
            .setnonblock()
            .map_err(err)?;
        if let Some(f) = filter {
            cap.filter(f, true).map_err(|e| CaptureError::Filter {
                source_name: iface.to_string(),
                filter: f.to_string(),
                message: e.to_string(),
            })?;
        }
        let link_type = cap.get_datalink().0 as u32;
        Ok(Capture {
            source: CaptureSource::Live(cap),
            _read_buffer: None,
            name: iface.to_string(),
            link_type,
            frames: 0,
            deadline: None,
            stop: None,
            progress: None,
        })
    }

    /// Stops [`Capture::for_each`] (with Ok) at this time: for live capture,
    /// which otherwise runs until an error.
    pub fn stop_at(&mut self, deadline: std::time::Instant) {
        self.deadline = Some(deadline);
    }

    /// Stops [`Capture::for_each`] (with Ok) once `flag` is set, e.g. by a
    /// SIGINT handler: checked at every frame and, on an idle live link,
    /// every few milliseconds.
    pub fn stop_on(&mut self, flag: &'static AtomicBool) {
        self.stop = Some(flag);
    }

    /// Calls `f` with the frames read so far and the bytes read every 65536
    /// frames of a capture file, for a progress display.
    pub fn report_progress(&mut self, f: impl FnMut(u64, Option<u64>) + Send + 'static) {
        self.progress = Some(Box::new(f));
    }

    /// How far into a capture file reading has come, in bytes (None for a
    /// live capture, or where the C library cannot tell).
    pub fn bytes_read(&self) -> Option<u64> {
        match &self.source {
            CaptureSource::File(cap) => file_position(cap),
            CaptureSource::Live(_) => None,
        }
    }

    /// The file or interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pcap link type.
    pub fn link_type(&self) -> u32 {
        self.link_type
    }

    /// Frames read so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Hands each frame to `f` until the capture ends (Ok) or fails (Err,
    /// after the frames before the failure). `f` returns false to stop.
    pub fn for_each(
        &mut self,
        mut f: impl FnMut(&RawPacket<'_>) -> bool,
    ) -> Result<(), CaptureError> {
        let link_type = self.link_type;
        loop {
            if self
                .deadline
                .is_some_and(|d| std::time::Instant::now() >= d)
                || self.stop.is_some_and(|s| s.load(Ordering::Relaxed))
            {
                return Ok(());
            }
            if self.frames & 0xFFFF == 0xFFFF {
                if let (Some(report), CaptureSource::File(c)) =
                    (self.progress.as_mut(), &self.source)
                {
                    report(self.frames + 1, file_position(c));
                }
            }
            let next = match &mut self.source {
                CaptureSource::File(c) => c.next_packet(),
                CaptureSource::Live(c) => c.next_packet(),
            };
            match next {
                Ok(p) => {
                    self.frames += 1;
                    // time_t and suseconds_t are i64 here but not everywhere.
                    #[allow(clippy::useless_conversion)]
                    let (secs, micros) = (
                        i64::from(p.header.ts.tv_sec),
                        i64::from(p.header.ts.tv_usec),
                    );
                    let raw = RawPacket {
                        ts: Timestamp::from_parts(secs, micros),
                        link_type,
                        data: p.data,
                        orig_len: p.header.len,
                    };
                    if !f(&raw) {
                        return Ok(());
                    }
                }
                Err(pcap::Error::NoMorePackets) => return Ok(()),
                Err(pcap::Error::TimeoutExpired) => {
                    // Nothing to read now (live capture): wait a little.
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    continue;
                }
                Err(e) => {
                    return Err(CaptureError::Read {
                        source_name: self.name.clone(),
                        frames: self.frames,
                        message: e.to_string(),
                    })
                }
            }
        }
    }
}
