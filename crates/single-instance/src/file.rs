//! Opening our own files (the lock file, the PID file, a log) without being
//! fooled by what someone put at their paths. A FIFO would block an `open` or
//! a `read` forever; a symbolic link would redirect our writes; a device may
//! act on being opened. So a path is checked with `lstat` before it is opened
//! (no device is ever opened in the common case), opened with `O_NOFOLLOW |
//! O_NONBLOCK` (a FIFO or a link can neither block nor redirect us), and the
//! type is checked again on the open descriptor, which is the only check a
//! swap cannot race.

use std::fmt;
use std::fs::{File, FileType, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::libc;

/// What a path names when it is not a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Directory,
    /// A symbolic link (never followed).
    Symlink,
    /// A FIFO (named pipe): reading or writing it could block forever.
    Fifo,
    /// A Unix-domain socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// Anything else the OS may report.
    Other,
}

impl Kind {
    /// The kind of a non-regular file type (`Other` for a regular one, or
    /// anything unknown).
    pub fn of(ft: FileType) -> Kind {
        if ft.is_dir() {
            Kind::Directory
        } else if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_fifo() {
            Kind::Fifo
        } else if ft.is_socket() {
            Kind::Socket
        } else if ft.is_char_device() {
            Kind::CharDevice
        } else if ft.is_block_device() {
            Kind::BlockDevice
        } else {
            Kind::Other
        }
    }
}

impl fmt::Display for Kind {
    /// An article and a noun, to follow "is": "a FIFO (named pipe)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Directory => "a directory",
            Kind::Symlink => "a symbolic link",
            Kind::Fifo => "a FIFO (named pipe)",
            Kind::Socket => "a socket",
            Kind::CharDevice => "a character device",
            Kind::BlockDevice => "a block device",
            Kind::Other => "an unknown kind of file",
        })
    }
}

/// Opens `path` with `options` only if it is (or, when `options` create it,
/// becomes) a regular file: `Ok(Err(kind))` names what is there instead.
/// Never follows a symbolic link and never blocks on a FIFO. The returned
/// file is in blocking mode again. A missing path without `create` is the
/// usual `NotFound` error.
pub fn open_regular(path: &Path, options: &OpenOptions) -> io::Result<Result<File, Kind>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => return Ok(Err(Kind::of(m.file_type()))),
        _ => {}
    }
    let mut options = options.clone();
    options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    let file = match options.open(path) {
        Ok(f) => f,
        Err(e) => {
            return match e.raw_os_error() {
                Some(libc::ELOOP) => Ok(Err(Kind::Symlink)),
                Some(libc::EISDIR) => Ok(Err(Kind::Directory)),
                // A socket, or a FIFO opened for writing with no reader; the
                // path changed since the `lstat` above.
                Some(libc::ENXIO | libc::EOPNOTSUPP) => Ok(Err(std::fs::symlink_metadata(path)
                    .map(|m| Kind::of(m.file_type()))
                    .unwrap_or(Kind::Other))),
                _ => Err(e),
            };
        }
    };
    let ft = file.metadata()?.file_type();
    if !ft.is_file() {
        return Ok(Err(Kind::of(ft)));
    }
    let flags = OFlag::from_bits_truncate(fcntl(&file, FcntlArg::F_GETFL)?);
    fcntl(&file, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(Ok(file))
}

/// Makes an open file private (mode 0600) if anyone but its owner could
/// read or write it; returns the mode it had, if it was changed.
pub fn make_private(file: &File) -> io::Result<Option<u32>> {
    let mode = file.metadata()?.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(Some(mode))
}

/// [`make_private`] for a path, if it names a regular file; anything else
/// (missing, a link, a FIFO) is left alone and reported as unchanged.
pub fn make_path_private(path: &Path) -> io::Result<Option<u32>> {
    match open_regular(path, OpenOptions::new().read(true)) {
        Ok(Ok(file)) => make_private(&file),
        Ok(Err(_)) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read() -> OpenOptions {
        let mut o = OpenOptions::new();
        o.read(true);
        o
    }

    #[test]
    fn special_files_are_named_never_opened_or_followed() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let sock = d.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let target = d.path().join("target");
        std::fs::write(&target, "x").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut write = OpenOptions::new();
        write.write(true).create(true).truncate(false);
        for (path, kind) in [
            (&fifo, Kind::Fifo),
            (&sock, Kind::Socket),
            (&link, Kind::Symlink),
            (&d.path().to_path_buf(), Kind::Directory),
            (&Path::new("/dev/null").to_path_buf(), Kind::CharDevice),
        ] {
            for o in [&read(), &write] {
                assert_eq!(
                    open_regular(path, o).unwrap().unwrap_err(),
                    kind,
                    "{}",
                    path.display()
                );
            }
        }
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "x",
            "the link's target is untouched"
        );
        let f = open_regular(&target, &read()).unwrap().unwrap();
        assert_eq!(
            fcntl(&f, FcntlArg::F_GETFL).unwrap() & libc::O_NONBLOCK,
            0,
            "blocking again"
        );
    }

    #[test]
    fn make_private_tightens_only_loose_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, "x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(make_path_private(&p).unwrap(), Some(0o644));
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(make_path_private(&p).unwrap(), None);
        assert_eq!(make_path_private(&d.path().join("missing")).unwrap(), None);
    }
}
