//! Persistence for Gatehouse: one API over SQLite (the embedded default) and PostgreSQL (for
//! several replicas).
//!
//! # Layout
//! - [`Store`]: the connection pool, migrations, health and transactions. The only place that
//!   knows which database is behind; everything else speaks through it.
//! - [`sql`]: the few generic statements (insert, update, get, list with filters and pages) that
//!   every entity module reuses, with the mapping of database errors to [`Error`].
//! - one module per entity of SPEC §2 (`users`, `groups`, `flows`, …): its record type, its
//!   writable fields, and the queries that are not generic.
//! - [`sealed`]: the secret columns, sealed with the server's secret key; entity modules seal on
//!   write and open on read, so callers see plain text only.
//!
//! Entity functions take a `&mut AnyConnection`, so callers compose them inside one transaction
//! ([`Store::begin`]) or run them on a pooled connection ([`Store::conn`]).
//!
//! SQL is written once in the subset both databases accept (`$1` placeholders, `RETURNING`,
//! `WITH RECURSIVE`); the schema has one migration folder per backend because identity columns
//! differ.

pub mod applications;
pub mod changes;
pub mod devices;
pub mod events;
pub mod flow_states;
pub mod flows;
pub mod groups;
pub mod invitations;
pub mod oauth;
pub mod outposts;
pub mod policies;
pub mod providers;
pub mod proxy_sessions;
pub mod reputation;
pub mod scope_mappings;
pub mod sealed;
pub mod sessions;
pub mod sources;
pub mod sql;
pub mod tokens;
pub mod users;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions, Executor};
use tokio::sync::Notify;

pub use gatehouse_sealing::SecretKey;
pub use sql::{Filter, ListSpec, Listed, Value};
pub use sqlx::AnyConnection as Conn;

/// An open transaction; commit it with [`commit`] or it rolls back when dropped. It derefs to
/// the connection, so store functions take `&mut tx` like any connection.
pub struct Tx {
    inner: sqlx::Transaction<'static, sqlx::Any>,
    /// This process's feed reader: woken after the commit, and waited for.
    feed: Arc<Feed>,
}

/// How this process's reader of the change feed ([`changes`]) and its writers meet: a commit
/// wakes the reader, and waits (briefly) until the reader has handed on what it appended, so
/// that the next request, on this replica, sees its own write applied by the embedded
/// outpost.
#[derive(Debug)]
struct Feed {
    /// Woken after every commit and by [`Store::poke`].
    committed: Notify,
    /// The position the reader has handed on; `None` until a reader runs.
    read: tokio::sync::watch::Sender<Option<i64>>,
}

/// How long a commit waits for the feed reader before it answers anyway (the change still
/// applies, a moment later).
const READ_YOUR_WRITES: Duration = Duration::from_secs(1);

impl std::ops::Deref for Tx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

/// A connection borrowed from the pool, outside any transaction.
pub type PoolConn = sqlx::pool::PoolConnection<sqlx::Any>;

/// A store result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// What went wrong in the store, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No row with that key.
    #[error("{what} not found")]
    NotFound {
        /// The kind of object looked for, e.g. `user`.
        what: &'static str,
    },
    /// A unique constraint refused the write; `field` is the column that clashed.
    #[error("{field}: {message}")]
    Conflict {
        /// The clashing field, e.g. `username`.
        field: String,
        /// Human message.
        message: String,
    },
    /// The write refers to something that does not exist or breaks a rule the schema enforces.
    #[error("{field}: {message}")]
    Invalid {
        /// The offending field, or `non_field_errors`.
        field: String,
        /// Human message.
        message: String,
    },
    /// A stored value could not be read back (corruption or a manual edit).
    #[error("stored value unreadable: {0}")]
    Corrupt(String),
    /// The database URL is not usable.
    #[error("database URL `{url}` is not usable: {reason}")]
    BadUrl {
        /// The URL with any password removed.
        url: String,
        /// Why.
        reason: String,
    },
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A sealed secret did not open (another key, altered, or moved from another row), or
    /// could not be sealed.
    #[error("secret {place} cannot be opened: {source}")]
    Sealed {
        /// Table, column and row, e.g. `providers.client_secret of client_id `abc``.
        place: String,
        /// Why.
        #[source]
        source: gatehouse_sealing::Error,
    },
    /// The database's secrets were sealed with another secret key than the configured one.
    #[error("the database's secrets are sealed with secret key {recorded}, but the configured key is {configured}: start with the key this database was used with (GATEHOUSE_SECRET_KEY, or the secret.key file in the data directory), e.g. restore it from the backup taken with the database")]
    WrongSecretKey {
        /// The key id the database records.
        recorded: String,
        /// The configured key's id.
        configured: String,
    },
}

impl Error {
    /// Whether the database could not be reached (as opposed to refusing the statement).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
            )
        )
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        sql::classify(e)
    }
}

/// Which database is behind the store. Shown in logs, metrics and `doctor`; never used for
/// branching outside this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file: single process, zero set-up.
    Sqlite,
    /// A PostgreSQL server: several replicas.
    Postgres,
}

impl Backend {
    /// Lowercase name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The database: a pool plus the knowledge of which backend it is.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite has one writer at a time, so transactions get a pool of their own with one
    /// connection: writers of this process queue for it in order and without sleeping (rather
    /// than in SQLite's busy handler, which polls with sleeps of up to 100 ms), and never wait
    /// behind readers for a connection. The busy handler still arbitrates between processes.
    /// `None` on PostgreSQL, where transactions come from the main pool.
    writer: Option<AnyPool>,
    /// The URL connected to, for the change listener's own connection (PostgreSQL).
    url: String,
    /// The server's secret key: seals and opens the secret columns ([`sealed`]). Held here,
    /// not process-wide, so servers with different keys can share a process (tests).
    key: Arc<SecretKey>,
    /// This process's feed reader ([`Feed`]).
    feed: Arc<Feed>,
}

/// The sequence numbers of committed changes, as every replica sharing a PostgreSQL database
/// hears them (`LISTEN`), on a connection of its own.
pub struct ChangeListener {
    inner: sqlx::postgres::PgListener,
}

impl ChangeListener {
    /// The next change's sequence number: `Some(seq)`, or `None` when the connection dropped
    /// (and was made again), so notices may have been missed and the feed must be read.
    pub async fn next(&mut self) -> Result<Option<i64>> {
        Ok(self
            .inner
            .try_recv()
            .await?
            .map(|n| n.payload().parse().unwrap_or(i64::MAX)))
    }
}

/// Removes a password from a URL so it can be logged or shown in an error.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Store {
    /// Connects to `url` (`sqlite://FILE` or `postgres://…`), creating an SQLite file if needed;
    /// `key` seals and opens the secret columns. Does not migrate; call [`Store::migrate`], then
    /// [`Store::adopt_key`].
    pub async fn connect(url: &str, key: Arc<SecretKey>) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let bad = |reason: String| Error::BadUrl {
            url: redact_url(url),
            reason,
        };
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(bad(
                "use sqlite://PATH or postgres://USER@HOST:PORT/DB".into()
            ));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|e| bad(e.to_string()))?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        let pool_options = || {
            AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(10))
            // A SQLite connection is a file handle that cannot drop out; pinging it on every
            // checkout would only add a round-trip to the connection's worker thread.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers proceed during a write; foreign keys are off by
                        // default in SQLite and the schema depends on them; memory-mapped
                        // reads spare a system call per page.
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; PRAGMA mmap_size = 268435456")
                            .await?;
                    }
                    Ok(())
                })
            })
        };
        let pool = pool_options()
            .max_connections(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            })
            .connect_with(options.clone())
            .await
            .map_err(|e| bad(e.to_string()))?;
        let writer = match backend {
            Backend::Sqlite => Some(
                pool_options()
                    .max_connections(1)
                    .connect_with(options)
                    .await
                    .map_err(|e| bad(e.to_string()))?,
            ),
            Backend::Postgres => None,
        };
        Ok(Store {
            pool,
            backend,
            writer,
            url,
            key,
            feed: Arc::new(Feed {
                committed: Notify::new(),
                read: tokio::sync::watch::channel(None).0,
            }),
        })
    }

    /// Listens for the sequence numbers of committed changes, this replica's and the
    /// others'; `None` on SQLite (see [`Store::committed`]).
    pub async fn listen_changes(&self) -> Result<Option<ChangeListener>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        // A pool of its own with a short wait: the listener must notice an unreachable
        // database within seconds (degraded mode starts there), not after sqlx's default 30 s.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy(&self.url)?;
        let mut inner = sqlx::postgres::PgListener::connect_with(&pool).await?;
        // A lost connection is reported at once (`next` answers `None`); the caller listens
        // afresh and reads what it missed.
        inner.eager_reconnect(false);
        inner.listen(changes::CHANNEL).await?;
        Ok(Some(ChangeListener { inner }))
    }

    /// Resolves at the next commit of this process (or [`Store::poke`]): the feed reader's
    /// cue to look for new changes without a timer.
    pub async fn committed(&self) {
        self.feed.committed.notified().await;
    }

    /// Wakes the feed reader after a write made outside [`Store::begin`] (autocommit).
    pub fn poke(&self) {
        self.feed.committed.notify_one();
    }

    /// Called by the feed reader: it has handed on every change up to `seq`. From the first
    /// call on, commits wait for it.
    pub fn feed_read(&self, seq: i64) {
        self.feed.read.send_replace(Some(seq));
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies pending migrations. On PostgreSQL this holds an advisory lock, so replicas that
    /// start together migrate once.
    pub async fn migrate(&self) -> Result<()> {
        self.migrator().run(&self.pool).await?;
        Ok(())
    }

    /// Versions of migrations this binary knows but the database has not applied yet.
    pub async fn pending_migrations(&self) -> Result<Vec<i64>> {
        let mut conn = self.pool.acquire().await?;
        let table_exists: i64 = sqlx::query_scalar(match self.backend {
            Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            Backend::Postgres => "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations'",
        })
        .fetch_one(&mut *conn)
        .await?;
        let applied: Vec<i64> = if table_exists > 0 {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_all(&mut *conn)
                .await?
        } else {
            Vec::new()
        };
        Ok(self
            .migrator()
            .iter()
            .map(|m| m.version)
            .filter(|v| !applied.contains(v))
            .collect())
    }

    /// The secret key sealed columns are sealed with: entity functions that read or write a
    /// secret take it.
    pub fn key(&self) -> &Arc<SecretKey> {
        &self.key
    }

    /// Checks the configured key against the one the database records (refusing another with
    /// [`Error::WrongSecretKey`]), records it on first start, and seals any secret still in
    /// plain text — all in one transaction. Returns how many values it sealed. `serve` runs it
    /// after migrating and before serving.
    pub async fn adopt_key(&self) -> Result<u64> {
        let mut tx = self.begin().await?;
        let sealed = sealed::adopt_key(&mut tx, &self.key).await?;
        commit(tx).await?;
        Ok(sealed)
    }

    /// Moves every sealed secret from this store's key to `new` and records `new`, in one
    /// transaction: on any failure nothing changes. Returns how many values moved. The store
    /// keeps its old key; connect again with `new` to use the database afterwards.
    pub async fn rotate_key(&self, new: &SecretKey) -> Result<u64> {
        let mut tx = self.begin().await?;
        let moved = sealed::rotate_key(&mut tx, &self.key, new).await?;
        commit(tx).await?;
        Ok(moved)
    }

    /// Answers when the database does (for readiness checks).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The backend behind this store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a transaction. On SQLite it takes the write lock up front (`BEGIN IMMEDIATE`): a
    /// deferred transaction that reads and then writes cannot wait for a concurrent writer and
    /// fails with "database is locked" at once, whereas waiting for the lock at `BEGIN` honours
    /// `busy_timeout`. On SQLite, transactions run on the single writer connection (see
    /// [`Store`]).
    pub async fn begin(&self) -> Result<Tx> {
        let inner = match &self.writer {
            Some(writer) => writer.begin_with("BEGIN IMMEDIATE").await?,
            None => self.pool.begin().await?,
        };
        Ok(Tx {
            inner,
            feed: self.feed.clone(),
        })
    }

    /// A pooled connection for reads that need no transaction.
    pub async fn conn(&self) -> Result<PoolConn> {
        Ok(self.pool.acquire().await?)
    }

    /// Closes every connection (at shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(writer) = &self.writer {
            writer.close().await;
        }
    }
}

/// Commits a transaction, mapping its error like any other store error.
pub async fn commit(mut tx: Tx) -> Result<()> {
    let following = tx.feed.read.borrow().is_some();
    let written = if following {
        Some(changes::latest(&mut tx).await?)
    } else {
        None
    };
    tx.inner.commit().await.map_err(Error::from)?;
    tx.feed.committed.notify_one();
    if let Some(written) = written {
        let mut read = tx.feed.read.subscribe();
        let caught_up = read.wait_for(|at| at.is_some_and(|at| at >= written));
        let _ = tokio::time::timeout(READ_YOUR_WRITES, caught_up).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_removed_from_urls() {
        assert_eq!(
            redact_url("postgres://gh:secret@db:5432/gh"),
            "postgres://gh:***@db:5432/gh"
        );
        assert_eq!(redact_url("postgres://gh@db/gh"), "postgres://gh@db/gh");
        assert_eq!(
            redact_url("sqlite://data/gatehouse.db"),
            "sqlite://data/gatehouse.db"
        );
    }
}
