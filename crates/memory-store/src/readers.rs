//! The pool of read-only connections used by searches, job lookups and integrity
//! checks. A checkout never waits: when every pooled connection is in use a fresh one is
//! opened (and dropped afterwards if the pool is full), so a slow reader cannot make
//! another request wait. It must never write: connections are read-only and `query_only`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{SqlContext, StoreError, on_path};
use crate::stats::Counters;

/// Read-only connections to one database file.
pub(crate) struct Readers {
    path: PathBuf,
    busy_timeout: Duration,
    capacity: usize,
    idle: Mutex<Vec<Connection>>,
    /// Where damage SQLite reports on a read is recorded (`/health` shows it).
    counters: Arc<Counters>,
}

impl Readers {
    /// A pool for `path`, pre-opening `capacity` connections (at least 1).
    pub fn open(
        path: PathBuf,
        capacity: usize,
        busy_timeout: Duration,
        counters: Arc<Counters>,
    ) -> Result<Self, StoreError> {
        let readers = Readers {
            path,
            busy_timeout,
            capacity: capacity.max(1),
            idle: Mutex::new(Vec::new()),
            counters,
        };
        let mut conns = Vec::with_capacity(readers.capacity);
        for _ in 0..readers.capacity {
            conns.push(readers.connect()?);
        }
        *readers.idle.lock().unwrap_or_else(PoisonError::into_inner) = conns;
        Ok(readers)
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let context = on_path("opening a read connection to", &self.path);
        let flags =
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&self.path, flags).ctx(&context)?;
        conn.busy_timeout(self.busy_timeout).ctx(&context)?;
        conn.pragma_update(None, "query_only", true).ctx(&context)?;
        Ok(conn)
    }

    /// Runs `f` on a connection taken from the pool (or a fresh one). Damage SQLite
    /// reports on the way is recorded for `/health`.
    pub fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let result = self.run(f);
        if let Err(e) = &result
            && e.is_damage()
        {
            self.counters.note_damage(&e.to_string());
        }
        result
    }

    fn run<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let pooled = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        let result = f(&conn);
        // A connection left inside a read transaction by an error would pin the WAL.
        if conn.is_autocommit() {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < self.capacity {
                idle.push(conn);
            }
        }
        result
    }

    /// Closes every idle connection (at shutdown, so the WAL can be truncated).
    pub fn close_all(&self) {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}
