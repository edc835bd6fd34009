//! Termination and reload signals as a file descriptor (signalfd), so the single-threaded
//! main loop waits on signals, inotify and its timer with one `poll`.

use crate::error::{Error, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub struct Signals {
    fd: OwnedFd,
}

impl Signals {
    /// Blocks SIGTERM, SIGINT and SIGHUP for normal delivery and routes them to a signalfd.
    /// (Children started by `std::process::Command` get an empty signal mask again.)
    pub fn new() -> Result<Signals> {
        // SAFETY: sigset manipulation on a local set, then sigprocmask/signalfd syscalls.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                libc::sigaddset(&mut set, s);
            }
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(Error::new("cannot block signals"));
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(Error::io("signalfd", &std::io::Error::last_os_error()));
            }
            Ok(Signals {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Signals received since the last call (non-blocking).
    pub fn take(&self) -> Vec<i32> {
        let mut out = Vec::new();
        loop {
            // SAFETY: reading one signalfd_siginfo into a properly sized, zeroed struct.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n != size as isize {
                return out;
            }
            out.push(info.ssi_signo as i32);
        }
    }
}
