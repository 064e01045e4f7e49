//! SIGCHLD through a self-pipe, as s6 does: the handler only writes one byte
//! to each registered pipe, and the supervisor loop reaps in normal context.
//!
//! Several supervisors may live in one process (tests do that), so there are
//! a few slots, each with its own pipe. A slot's pipe is made once and never
//! closed: a handler that raced with an unregister writes into a valid pipe
//! whose stale byte the next user drains, never into a reused descriptor.

use std::io;
use std::os::fd::{IntoRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, Once};

const SLOTS: usize = 16;
static WRITE: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];
static IN_USE: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];
static READ: Mutex<[RawFd; SLOTS]> = Mutex::new([-1; SLOTS]);
static INSTALL: Once = Once::new();

extern "C" fn on_sigchld(_: libc::c_int) {
    // SAFETY: only async-signal-safe calls (write) on descriptors that are
    // never closed; errno is saved and restored around them.
    unsafe {
        let errno = *libc::__errno_location();
        for (slot, fd) in WRITE.iter().enumerate() {
            let fd = fd.load(Ordering::Acquire);
            if fd >= 0 && IN_USE[slot].load(Ordering::Acquire) {
                libc::write(fd, b"c".as_ptr().cast(), 1);
            }
        }
        *libc::__errno_location() = errno;
    }
}

/// A registered self-pipe: readable after every SIGCHLD. Unregisters on drop.
pub struct Registration {
    slot: usize,
    pub read: RawFd,
}

impl Drop for Registration {
    fn drop(&mut self) {
        IN_USE[self.slot].store(false, Ordering::Release);
    }
}

/// Installs the handler (once per process) and takes a free slot.
pub fn register() -> io::Result<Registration> {
    let mut install_err = None;
    INSTALL.call_once(|| {
        // SAFETY: a plain sigaction with a handler that is async-signal-safe;
        // SA_NOCLDSTOP because stopped children are not exits.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigchld as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART | libc::SA_NOCLDSTOP;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(libc::SIGCHLD, &sa, std::ptr::null_mut()) != 0 {
                install_err = Some(io::Error::last_os_error());
            }
        }
    });
    if let Some(e) = install_err {
        return Err(e);
    }
    let mut reads = READ.lock().unwrap_or_else(|p| p.into_inner());
    for slot in 0..SLOTS {
        if IN_USE[slot].load(Ordering::Acquire) {
            continue;
        }
        if reads[slot] < 0 {
            let (r, w) = super::nonblocking_pipe()?;
            reads[slot] = r.into_raw_fd();
            WRITE[slot].store(w.into_raw_fd(), Ordering::Release);
        }
        IN_USE[slot].store(true, Ordering::Release);
        return Ok(Registration {
            slot,
            read: reads[slot],
        });
    }
    Err(io::Error::other("too many supervisors in one process"))
}
