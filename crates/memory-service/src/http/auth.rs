//! The bearer token of an instance that other machines can reach
//! (`--allow-remote`). Loopback needs none: only local users reach it, and the
//! `Host` check keeps web pages out. Off loopback anyone on the network could
//! read and change a user's chat memory, so every request but `/health` (which
//! supervisors and `status` probe) must prove it read `<home>/auth_token`, a
//! file only the user can read.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::config::AuthToken;

/// The longest token file read (a token is 64 hex digits).
const MAX_TOKEN_FILE: u64 = 1024;

/// `<home>/auth_token`.
pub fn token_path(home: &Path) -> PathBuf {
    crate::home::Home::new(home).auth_token()
}

/// A new token: 256 bits from the OS's random source (`rand`'s thread RNG,
/// seeded from it), as 64 lowercase hex digits.
fn new_token() -> String {
    format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>())
}

/// Reads the token at `path` without following a link or blocking on a FIFO;
/// `Ok(None)` when there is no file. A looser mode than 0600 is tightened
/// (with a warning); another user's file, a non-regular file or text that is
/// not a token are errors naming the path and what to do.
fn read_token(path: &Path) -> anyhow::Result<Option<AuthToken>> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot open the token file {} (a symbolic link is refused); remove it and start again",
                    path.display()
                )
            });
        }
    };
    let meta = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_file() {
        let kind = single_instance::file::Kind::of(meta.file_type());
        bail!(
            "the token file {} is {kind}, not a regular file; remove it and start again",
            path.display()
        );
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        bail!(
            "the token file {} belongs to user id {}, not to you ({me}); remove it and start again",
            path.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private", path.display()))?;
        tracing::warn!(
            path = %path.display(),
            "the token file was mode {:04o} (others could read it); made it private (0600)",
            meta.mode() & 0o777
        );
    }
    let mut text = String::new();
    file.take(MAX_TOKEN_FILE)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    let token = text.trim();
    if token.len() < 32 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!(
            "the token file {} does not hold a token (at least 32 visible ASCII characters); \
             remove it and start again (a new one is created)",
            path.display()
        );
    }
    Ok(Some(AuthToken::new(token)))
}

/// `O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC`: a link at the path is refused, a
/// FIFO never blocks the open.
fn libc_flags() -> i32 {
    use nix::fcntl::OFlag;
    (OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits()
}

/// The token of `home`, created once (random, 0600, written to a temporary
/// file and renamed into place so a crash never leaves half a token) when
/// there is none. Called by `serve` while it holds the home's lock, so two
/// instances never race to create it.
pub fn load_or_create(home: &Path) -> anyhow::Result<AuthToken> {
    let path = token_path(home);
    if let Some(t) = read_token(&path)? {
        return Ok(t);
    }
    let tmp = token_path(home).with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let token = new_token();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc_flags())
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("creating {}", path.display()))?;
    Ok(AuthToken::new(token))
}

/// The token a client command sends: `<home>/auth_token` if it exists and is
/// readable as a token; `None` otherwise (a loopback instance needs none; a
/// remote one then answers 401, which says where the token lives).
pub fn client_token(home: &Path) -> Option<AuthToken> {
    match read_token(&token_path(home)) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("not sending a token: {e:#}");
            None
        }
    }
}

/// Routes anyone may call without the token: supervisors, `status` and
/// `start` probe `/health`.
const OPEN: &[&str] = &["/health"];

/// Refuses a request without the instance's bearer token (when it has one)
/// with 401 and `WWW-Authenticate: Bearer`.
pub(super) async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = &state.config.auth_token else {
        return next.run(req).await;
    };
    if OPEN.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let mut given = req.headers().get_all(header::AUTHORIZATION).iter();
    let ok = match (given.next(), given.next()) {
        (Some(v), None) => v
            .as_bytes()
            .strip_prefix(b"Bearer ")
            .is_some_and(|t| token.matches(t)),
        _ => false,
    };
    if !ok {
        let mut resp = ApiError::client(
            StatusCode::UNAUTHORIZED,
            "this Memory Service accepts remote connections (--allow-remote), so every request \
             but /health needs `Authorization: Bearer <token>`, the token in <home>/auth_token \
             on the service's machine; it was missing or wrong",
        )
        .into_response();
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let path = token_path(dir.path());
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(a.expose().len(), 64);
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a, b, "the same token on the next start");
        assert_eq!(client_token(dir.path()), Some(a));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        load_or_create(dir.path()).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().mode() & 0o777,
            0o600,
            "tightened"
        );
    }

    #[test]
    fn odd_token_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = token_path(dir.path());
        std::fs::write(&path, "short\n").unwrap();
        let err = format!("{:#}", load_or_create(dir.path()).unwrap_err());
        assert!(
            err.contains("does not hold a token") && err.contains("auth_token"),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = format!("{:#}", load_or_create(dir.path()).unwrap_err());
        assert!(err.contains("not a regular file"), "{err}");
        assert_eq!(client_token(dir.path()), None);
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
        let err = format!("{:#}", load_or_create(dir.path()).unwrap_err());
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(client_token(dir.path()), None);
    }
}
