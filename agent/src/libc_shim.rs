//! Two libc functions the static musl binary defines itself, because the
//! versions linked otherwise cost kilobytes of flash for one small job.
//!
//! Thread names without printf: std names a new thread
//! (`thread::Builder::name`: the supervisor, probe, page and watchdog
//! threads) through `pthread_setname_np`. musl's version
//! formats `/proc/self/task/%d/comm` with `snprintf`, which links the whole
//! printf engine, ~8 kB of flash nothing else in the binary uses. std only
//! ever names the calling thread, which one `prctl(PR_SET_NAME)` does, so
//! static musl builds define the symbol here and the linker leaves musl's
//! (and printf) out. Other threads get `ENOTSUP`, as the name is cosmetic.
//!
//! `qsort` without a quicksort engine: see [`qsort`].

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

/// `void qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))`:
/// a heapsort (n log n at worst, no allocation, not stable — qsort need
/// not be). Its one caller in the binary is musl's `getaddrinfo`, ordering
/// at most 48 addresses; zig's libc otherwise links a pattern-defeating
/// quicksort of ~7 kB for it.
///
/// # Safety
/// As C's qsort: `base` points to `n` initialised elements of `size` bytes
/// each, writable, and `cmp` is a valid total order on them.
#[cfg(any(target_env = "musl", test))]
#[cfg_attr(target_env = "musl", no_mangle)]
pub unsafe extern "C" fn qsort(
    base: *mut libc::c_void,
    n: usize,
    size: usize,
    cmp: Option<unsafe extern "C" fn(*const libc::c_void, *const libc::c_void) -> libc::c_int>,
) {
    let Some(cmp) = cmp else { return };
    if n < 2 || size == 0 || base.is_null() {
        return;
    }
    let at = |i: usize| base.cast::<u8>().wrapping_add(i * size);
    // SAFETY (all calls below): indexes stay below `n`, so every pointer is
    // one of the caller's elements; distinct indexes never overlap.
    let less = |i: usize, j: usize| unsafe { cmp(at(i).cast(), at(j).cast()) < 0 };
    let swap = |i: usize, j: usize| unsafe { std::ptr::swap_nonoverlapping(at(i), at(j), size) };
    let sift_down = |mut root: usize, end: usize| loop {
        let mut child = 2 * root + 1;
        if child >= end {
            break;
        }
        if child + 1 < end && less(child, child + 1) {
            child += 1;
        }
        if !less(root, child) {
            break;
        }
        swap(root, child);
        root = child;
    };
    for start in (0..n / 2).rev() {
        sift_down(start, n);
    }
    for end in (1..n).rev() {
        swap(0, end);
        sift_down(0, end);
    }
}

#[cfg(test)]
mod tests {
    use super::{pthread_setname_np, qsort};

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

    unsafe extern "C" fn by_value(a: *const libc::c_void, b: *const libc::c_void) -> libc::c_int {
        // SAFETY: qsort hands this two pointers into the u32 slice below.
        let (a, b) = unsafe { (*a.cast::<u32>(), *b.cast::<u32>()) };
        a.cmp(&b) as libc::c_int
    }

    #[test]
    fn qsort_orders_like_the_standard_sort() {
        let mut seed = 0x2545_f491_u32;
        for n in [0usize, 1, 2, 3, 7, 48, 200] {
            let mut v: Vec<u32> = (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed % 50
                })
                .collect();
            let mut want = v.clone();
            want.sort();
            // SAFETY: `v` holds `n` u32s and `by_value` orders u32s.
            unsafe { qsort(v.as_mut_ptr().cast(), n, 4, Some(by_value)) };
            assert_eq!(v, want, "n = {n}");
        }
    }
}
