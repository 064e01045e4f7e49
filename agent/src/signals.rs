//! SIGTERM, SIGINT and SIGHUP through a self-pipe, as s6 does: the handler
//! only writes the signal number as one byte to a non-blocking socket; the
//! agent's event loop reads it like any other input. Nothing else runs in
//! signal context, so the agent's state is never touched mid-update.

use std::io;
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// Write end of the pipe, for the handler; -1 until [`install`].
static PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = PIPE.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    // SAFETY: write(2) and errno access are async-signal-safe; the buffer
    // is a local byte. errno is restored so the interrupted code sees its own.
    unsafe {
        let errno = *libc::__errno_location();
        let b = sig as u8;
        libc::write(fd, (&b as *const u8).cast(), 1);
        *libc::__errno_location() = errno;
    }
}

/// Routes SIGTERM, SIGINT and SIGHUP to the returned stream: each signal
/// arrives as one byte holding its number. Call once, at start.
pub fn install() -> io::Result<UnixStream> {
    let (read, write) = UnixStream::pair()?;
    // A full pipe must drop signals, never block the handler.
    write.set_nonblocking(true)?;
    PIPE.store(write.into_raw_fd(), Ordering::SeqCst);
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only does async-signal-safe work (see above).
        unsafe { sigaction(sig, &action) }.map_err(io::Error::from)?;
    }
    Ok(read)
}

/// What a byte read from the pipe means.
pub fn name(byte: u8) -> Option<Signal> {
    match i32::from(byte) {
        libc::SIGTERM => Some(Signal::SIGTERM),
        libc::SIGINT => Some(Signal::SIGINT),
        libc::SIGHUP => Some(Signal::SIGHUP),
        _ => None,
    }
}
