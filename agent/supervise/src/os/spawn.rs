//! Starting one instance: everything is prepared in the parent (paths, argv,
//! environment, account ids, limits, descriptors), then `fork`, and the child
//! only makes async-signal-safe system calls until `execve`. The agent is
//! multi-threaded; allocating or locking after `fork` could deadlock on a lock
//! another thread held at the moment of the fork.
//!
//! A close-on-exec error pipe tells the parent whether `execve` happened: it
//! reads end-of-file on success, or the failing step and its errno.

use std::ffi::{CString, OsStr};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Group, Pid, User};

use crate::service::{Limit, Resource, ServiceDef};

/// Where the child's stdout and stderr go.
pub struct Stdio {
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// The user, group and supplementary groups a service runs as.
#[derive(Debug, Clone)]
pub struct Account {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Vec<libc::gid_t>,
    pub home: PathBuf,
    pub name: String,
}

/// Resolves `user`/`group` of a definition; `Ok(None)` when neither is set.
/// This is also how a bad user is caught when the config is loaded.
pub fn account(def: &ServiceDef) -> Result<Option<Account>, String> {
    if def.user.is_none() && def.group.is_none() {
        return Ok(None);
    }
    let mut acc = match &def.user {
        Some(name) => {
            let u = User::from_name(name)
                .map_err(|e| format!("cannot look up user '{name}': {e}"))?
                .ok_or_else(|| format!("bad user '{name}': no such account"))?;
            let cname = CString::new(name.as_str()).map_err(|_| format!("bad user '{name}'"))?;
            let groups = nix::unistd::getgrouplist(&cname, u.gid)
                .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
                .unwrap_or_else(|_| vec![u.gid.as_raw()]);
            Account {
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
                groups,
                home: u.dir,
                name: name.clone(),
            }
        }
        None => Account {
            // SAFETY: getuid/getgid cannot fail.
            uid: unsafe { libc::getuid() },
            gid: unsafe { libc::getgid() },
            groups: Vec::new(),
            home: PathBuf::from("/"),
            name: String::new(),
        },
    };
    if let Some(name) = &def.group {
        let g = Group::from_name(name)
            .map_err(|e| format!("cannot look up group '{name}': {e}"))?
            .ok_or_else(|| format!("bad group '{name}': no such group"))?;
        acc.gid = g.gid.as_raw();
        if !acc.groups.contains(&acc.gid) {
            acc.groups.insert(0, acc.gid);
        }
    }
    if acc.groups.is_empty() {
        acc.groups.push(acc.gid);
    }
    Ok(Some(acc))
}

/// Finds `program` in `PATH` unless it already names a path.
pub fn resolve(program: &str, path_var: Option<&OsStr>) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let default = OsStr::new("/usr/sbin:/usr/bin:/sbin:/bin");
    let dirs = path_var.unwrap_or(default);
    std::env::split_paths(dirs)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn rlimit_resource(r: Resource) -> i32 {
    // The libc constants have a different integer type per target libc;
    // every value fits an i32.
    #[allow(clippy::unnecessary_cast)]
    let v = match r {
        Resource::As => libc::RLIMIT_AS,
        Resource::Core => libc::RLIMIT_CORE,
        Resource::Cpu => libc::RLIMIT_CPU,
        Resource::Data => libc::RLIMIT_DATA,
        Resource::Fsize => libc::RLIMIT_FSIZE,
        Resource::Memlock => libc::RLIMIT_MEMLOCK,
        Resource::Msgqueue => libc::RLIMIT_MSGQUEUE,
        Resource::Nice => libc::RLIMIT_NICE,
        Resource::Nofile => libc::RLIMIT_NOFILE,
        Resource::Nproc => libc::RLIMIT_NPROC,
        Resource::Rss => libc::RLIMIT_RSS,
        Resource::Rtprio => libc::RLIMIT_RTPRIO,
        Resource::Rttime => libc::RLIMIT_RTTIME,
        Resource::Sigpending => libc::RLIMIT_SIGPENDING,
        Resource::Stack => libc::RLIMIT_STACK,
        Resource::Locks => libc::RLIMIT_LOCKS,
    } as i32;
    v
}

fn rlim(v: Option<u64>) -> libc::rlim_t {
    match v {
        None => libc::RLIM_INFINITY,
        Some(n) => libc::rlim_t::try_from(n).unwrap_or(libc::RLIM_INFINITY),
    }
}

/// Everything the child needs, owned by the parent across the fork.
struct Prepared {
    program: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    dir: Option<CString>,
    account: Option<Account>,
    limits: Vec<(i32, libc::rlimit)>,
    stdin: OwnedFd,
    stdio: Stdio,
    cgroup_procs: Vec<OwnedFd>,
}

fn cstring(s: impl AsRef<[u8]>, what: &str) -> Result<CString, String> {
    CString::new(s.as_ref()).map_err(|_| format!("{what} contains a NUL byte"))
}

fn prepare(
    def: &ServiceDef,
    account: Option<Account>,
    stdio: Stdio,
    cgroup_procs: Vec<OwnedFd>,
) -> Result<Prepared, String> {
    let mut env: Vec<(Vec<u8>, Vec<u8>)> = std::env::vars_os()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    let mut set = |k: &[u8], v: &[u8]| match env.iter_mut().find(|(ek, _)| ek == k) {
        Some(e) => e.1 = v.to_vec(),
        None => env.push((k.to_vec(), v.to_vec())),
    };
    if let Some(acc) = account.as_ref().filter(|a| !a.name.is_empty()) {
        set(b"USER", acc.name.as_bytes());
        set(b"LOGNAME", acc.name.as_bytes());
        set(b"HOME", acc.home.as_os_str().as_bytes());
    }
    for (k, v) in &def.env {
        set(k.as_bytes(), v.as_bytes());
    }
    let path_var = env
        .iter()
        .find(|(k, _)| k == b"PATH")
        .map(|(_, v)| OsStr::from_bytes(v).to_os_string());
    let first = def.command.first().ok_or("empty command")?;
    let program = resolve(first, path_var.as_deref())
        .ok_or_else(|| format!("command '{first}' not found in PATH"))?;
    let envp = env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.clone();
            kv.push(b'=');
            kv.extend_from_slice(v);
            cstring(kv, "an environment variable")
        })
        .collect::<Result<_, _>>()?;
    Ok(Prepared {
        program: cstring(program.as_os_str().as_bytes(), "the command")?,
        argv: def
            .command
            .iter()
            .map(|a| cstring(a, "an argument"))
            .collect::<Result<_, _>>()?,
        envp,
        dir: def.dir.as_ref().map(|d| cstring(d, "dir")).transpose()?,
        account,
        limits: def
            .limits
            .iter()
            .map(|l: &Limit| {
                (
                    rlimit_resource(l.resource),
                    libc::rlimit {
                        rlim_cur: rlim(l.soft),
                        rlim_max: rlim(l.hard),
                    },
                )
            })
            .collect(),
        stdin: OpenOptions::new()
            .read(true)
            .open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| format!("cannot open /dev/null: {e}"))?,
        stdio,
        cgroup_procs,
    })
}

const STEP_NAMES: [&str; 7] = [
    "setsid",
    "redirect stdio",
    "setrlimit",
    "chdir",
    "setgroups",
    "setgid/setuid",
    "exec",
];

/// Starts `def`; returns the pid once `execve` succeeded.
pub fn spawn(
    def: &ServiceDef,
    account: Option<Account>,
    stdio: Stdio,
    cgroup_procs: Vec<OwnedFd>,
) -> Result<u32, String> {
    let p = prepare(def, account, stdio, cgroup_procs)?;
    let argv: Vec<*const libc::c_char> = p
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = p
        .envp
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let (err_read, err_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot create a pipe: {e}"))?;

    // SAFETY: the child branch only calls async-signal-safe functions on data
    // prepared above, and ends in execve or _exit.
    match unsafe { fork() }.map_err(|e| format!("fork failed: {e}"))? {
        ForkResult::Child => unsafe { child(&p, &argv, &envp, err_write.as_raw_fd()) },
        ForkResult::Parent { child } => {
            drop(err_write);
            drop(p);
            let mut report = [0u8; 5];
            let mut got = 0;
            let mut file = File::from(err_read);
            while got < report.len() {
                match file.read(&mut report[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            if got == 0 {
                return Ok(child.as_raw() as u32);
            }
            // The child is exiting with 127; reap it here, it never was an instance.
            let _ = waitpid(Pid::from_raw(child.as_raw()), None);
            let step = STEP_NAMES.get(usize::from(report[0])).unwrap_or(&"start");
            let errno = i32::from_ne_bytes([report[1], report[2], report[3], report[4]]);
            Err(format!(
                "{step} failed: {}",
                io::Error::from_raw_os_error(errno)
            ))
        }
    }
}

/// The forked child. Only async-signal-safe libc calls from here to execve.
unsafe fn child(
    p: &Prepared,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    err: RawFd,
) -> ! {
    let fail = |step: u8| -> ! {
        // SAFETY: errno location, write and _exit are async-signal-safe.
        unsafe {
            let errno = (*libc::__errno_location()).to_ne_bytes();
            let msg = [step, errno[0], errno[1], errno[2], errno[3]];
            libc::write(err, msg.as_ptr().cast(), msg.len());
            libc::_exit(127)
        }
    };
    // SAFETY: plain system calls on valid descriptors and C strings that the
    // parent keeps alive until after the fork.
    unsafe {
        // The agent's signal mask and ignored signals (Rust ignores SIGPIPE)
        // would otherwise be inherited across exec.
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        // Its own session and process group, so stop signals reach the
        // whole tree of a shell-wrapped service.
        if libc::setsid() < 0 {
            fail(0);
        }
        if libc::dup2(p.stdin.as_raw_fd(), 0) < 0
            || libc::dup2(p.stdio.stdout.as_raw_fd(), 1) < 0
            || libc::dup2(p.stdio.stderr.as_raw_fd(), 2) < 0
        {
            fail(1);
        }
        // Joining the cgroup is best effort: limits are an extra, not a
        // reason to leave the service down.
        for fd in &p.cgroup_procs {
            libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1);
        }
        for (resource, lim) in &p.limits {
            #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
            if libc::setrlimit(*resource as _, lim) != 0 {
                fail(2);
            }
        }
        if let Some(dir) = &p.dir {
            if libc::chdir(dir.as_ptr()) != 0 {
                fail(3);
            }
        }
        if let Some(acc) = &p.account {
            // Only root may (and must) drop its supplementary groups.
            #[allow(clippy::useless_conversion)]
            if libc::geteuid() == 0
                && libc::setgroups(acc.groups.len() as _, acc.groups.as_ptr()) != 0
            {
                fail(4);
            }
            if libc::setgid(acc.gid) != 0 || libc::setuid(acc.uid) != 0 {
                fail(5);
            }
        }
        libc::execve(p.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
        fail(6)
    }
}
