//! Thread names without printf.
//!
//! std names a new thread (`thread::Builder::name`: the supervisor, probe,
//! page and watchdog threads) through `pthread_setname_np`. musl's version
//! formats `/proc/self/task/%d/comm` with `snprintf`, which links the whole
//! printf engine, ~8 kB of flash nothing else in the binary uses. std only
//! ever names the calling thread, which one `prctl(PR_SET_NAME)` does, so
//! static musl builds define the symbol here and the linker leaves musl's
//! (and printf) out. Other threads get `ENOTSUP`, as the name is cosmetic.

/// `int pthread_setname_np(pthread_t thread, const char *name)`; exported
/// under that name on musl only (tests call it directly elsewhere).
#[cfg(any(target_env = "musl", test))]
#[cfg_attr(target_env = "musl", no_mangle)]
pub extern "C" fn pthread_setname_np(
    thread: libc::pthread_t,
    name: *const libc::c_char,
) -> libc::c_int {
    // SAFETY: pthread_self has no preconditions; PR_SET_NAME reads the
    // caller's NUL-terminated `name` (the kernel copies at most 16 bytes).
    unsafe {
        if thread != libc::pthread_self() {
            return libc::ENOTSUP;
        }
        if libc::prctl(libc::PR_SET_NAME, name) != 0 {
            return libc::EINVAL;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::pthread_setname_np;

    fn own_comm() -> String {
        std::fs::read_to_string("/proc/thread-self/comm")
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    #[test]
    fn calling_thread_is_renamed_and_another_thread_is_refused() {
        let (renamed, other) = std::thread::spawn(|| {
            // SAFETY: pthread_self has no preconditions.
            let me = unsafe { libc::pthread_self() };
            let rc = pthread_setname_np(me, c"nuvol-test".as_ptr());
            let main = std::thread::spawn(move || pthread_setname_np(me, c"other".as_ptr()))
                .join()
                .unwrap();
            ((rc, own_comm()), main)
        })
        .join()
        .unwrap();
        assert_eq!(renamed, (0, "nuvol-test".to_string()));
        assert_eq!(other, libc::ENOTSUP);
    }

    #[test]
    fn named_thread_carries_its_name_in_the_kernel() {
        let comm = std::thread::Builder::new()
            .name("nuvol-named".into())
            .spawn(own_comm)
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(comm, "nuvol-named");
    }
}
