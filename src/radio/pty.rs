//! A pseudo-terminal for `spinel+hdlc+forkpty://`: the RCP program runs with the pty's slave
//! side as its stdin and stdout, as otbr-agent's `forkpty` does, and ferry talks HDLC on the
//! master side.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{ready, Context, Poll};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::process::{Child, Command};

/// The master side of a pty as a non-blocking tokio stream.
#[derive(Debug)]
pub struct PtyStream {
    fd: AsyncFd<File>,
}

/// Makes a pty pair in raw mode (no echo, no line discipline): `(master, slave)`.
pub fn open_raw_pty() -> io::Result<(OwnedFd, OwnedFd)> {
    let pty = nix::pty::openpty(None, None).map_err(io::Error::from)?;
    let mut t = tcgetattr(pty.slave.as_fd()).map_err(io::Error::from)?;
    cfmakeraw(&mut t);
    tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &t).map_err(io::Error::from)?;
    Ok((pty.master, pty.slave))
}

impl PtyStream {
    /// Wraps a pty master (made non-blocking here). Must run inside a tokio runtime.
    pub fn new(master: OwnedFd) -> io::Result<PtyStream> {
        let flags = fcntl(master.as_fd(), FcntlArg::F_GETFL).map_err(io::Error::from)?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(master.as_fd(), FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
        let file = File::from(master);
        // SAFETY: the AsyncFd owns the File, so its descriptor stays open and the same for as
        // long as it is registered.
        let fd = unsafe { AsyncFd::register(file) }.map_err(|e| e.into_parts().1)?;
        Ok(PtyStream { fd })
    }
}

/// Spawns `program args…` on a fresh raw pty; the child is killed when dropped.
pub fn spawn_on_pty(program: &Path, args: &[String]) -> io::Result<(PtyStream, Child)> {
    let (master, slave) = open_raw_pty()?;
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave))
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start RCP program {}: {e}", program.display())))?;
    Ok((PtyStream::new(master)?, child))
}

impl AsyncRead for PtyStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|f| f.get_ref().read(unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Linux reports EIO on the master once every slave fd is closed: the program
                // is gone. Treat it as end of file.
                Ok(Err(e)) if e.raw_os_error() == Some(nix::libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|f| f.get_ref().write(data)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
