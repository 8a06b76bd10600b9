//! The panel store: the database the workers' effects live in.
//!
//! One code path serves SQLite (the local default, a file) and PostgreSQL
//! (production) through sqlx's `Any` driver. The SQL is the dialect the two
//! share, so both backends run the same statements and the same tests.
//!
//! Every handler works inside a [`Unit`]: one transaction that starts by
//! claiming the event id in `processed_events`. The claim is the first
//! write, which matters twice over: a duplicate is found before any effect,
//! and SQLite takes its write lock at once instead of upgrading a read lock
//! later, which is where concurrent SQLite writers deadlock.

pub mod panel;

use std::time::Duration;

use jiff::Timestamp;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection as _, Executor as _, Row as _, Transaction};
use uuid::Uuid;

use crate::contract::events::Envelope;

/// Versioned migrations, applied in order at start. Append only: an applied
/// migration is never edited, a change is a new file.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "panel", include_str!("migrations/0001_panel.sql")),
    (
        2,
        "fulfilment",
        include_str!("migrations/0002_fulfilment.sql"),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database URL `{0}`: use sqlite://PATH (a file, created if missing) or postgres://USER:PASSWORD@HOST/DB"
    )]
    UnsupportedUrl(String),
    #[error("cannot open the panel store at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot apply migration {version} ({name}) to the panel store: {source}")]
    Migration {
        version: i64,
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "the panel store's schema is at version {found}, newer than this build knows ({known}); upgrade smmctl"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("panel store query failed: {0}")]
    Query(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether trying again later can help: a lost connection, a lock held
    /// too long, a serialization conflict. Constraint violations and schema
    /// errors stay wrong however often they are retried.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Query(e) | StoreError::Connect { source: e, .. } => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_) => true,
                sqlx::Error::Database(db) => {
                    let code = db.code().unwrap_or_default();
                    // PostgreSQL: serialization failure, deadlock, lock
                    // timeout, admin shutdown, too many connections.
                    // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6), with
                    // their extended codes.
                    matches!(
                        code.as_ref(),
                        "40001" | "40P01" | "55P03" | "57P01" | "57P03" | "53300"
                    ) || code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
                }
                _ => false,
            },
            _ => false,
        }
    }
}

/// `postgres://user:secret@host/db` as `postgres://user:***@host/db`, so a
/// connection error can name the database without printing its password.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let Some((credentials, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = credentials.split_once(':').map_or(credentials, |(u, _)| u);
    let path = if rest.contains('/') {
        format!("/{path}")
    } else {
        String::new()
    };
    let password = if credentials.contains(':') {
        ":***"
    } else {
        ""
    };
    format!("{scheme}://{user}{password}@{host}{path}")
}

/// The connection URL sqlx understands, and which backend it selects.
fn normalize_url(url: &str) -> Result<(String, Backend), StoreError> {
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if rest.is_empty() {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        }
        // `mode=rwc` creates the file: the local default must work on a
        // fresh machine without a setup step.
        let separator = if rest.contains('?') { '&' } else { '?' };
        let mode = if rest.contains("mode=") {
            String::new()
        } else {
            format!("{separator}mode=rwc")
        };
        return Ok((format!("sqlite://{rest}{mode}"), Backend::Sqlite));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((url.to_owned(), Backend::Postgres));
    }
    Err(StoreError::UnsupportedUrl(redact_url(url)))
}

/// Which backend a URL selects, or why it selects none; checks the URL
/// without connecting.
pub fn backend_of(url: &str) -> Result<Backend, StoreError> {
    normalize_url(url).map(|(_, backend)| backend)
}

/// The file a `sqlite://` URL names, so its directory can be created.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Opens the store and brings its schema up to date, waiting up to 30 s
    /// for a connection.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_within(url, Duration::from_secs(30)).await
    }

    /// [`Store::open`] that gives up on a connection after `timeout`: an
    /// unreachable database fails a start within the command's timeout.
    pub async fn open_within(url: &str, timeout: Duration) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (normalized, backend) = normalize_url(url)?;
        let connect_error = |source| StoreError::Connect {
            url: redact_url(url),
            source,
        };
        if let Some(path) = sqlite_path(&normalized)
            && let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| connect_error(sqlx::Error::Io(e)))?;
        }
        let options: AnyConnectOptions = normalized.parse().map_err(connect_error)?;
        let direct = options.clone();
        let pool = AnyPoolOptions::new()
            // SQLite has one writer at a time whatever the pool size; a
            // small pool keeps readers from starving it.
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .acquire_timeout(timeout)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; FULL makes
                        // every commit durable before the offset that
                        // depends on it is stored; the busy timeout makes a
                        // second writer wait instead of failing at once.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA busy_timeout = 15000",
                            "PRAGMA foreign_keys = ON",
                        ] {
                            conn.execute(pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await;
        let pool = match pool {
            Ok(pool) => pool,
            // The pool only says it waited in vain; one direct attempt
            // says why (refused, unknown host, wrong password).
            Err(sqlx::Error::PoolTimedOut) => {
                let reason =
                    match tokio::time::timeout(timeout, sqlx::AnyConnection::connect_with(&direct))
                        .await
                    {
                        Ok(Err(e)) => e,
                        _ => sqlx::Error::PoolTimedOut,
                    };
                return Err(connect_error(reason));
            }
            Err(e) => return Err(connect_error(e)),
        };
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS smm_schema_migrations (\
             version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
        )
        .await?;
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM smm_schema_migrations")
                .fetch_one(&mut *conn)
                .await?;
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        if let Some(found) = newest
            && found > known
        {
            return Err(StoreError::SchemaTooNew { found, known });
        }
        for &(version, name, sql) in MIGRATIONS {
            if newest.is_some_and(|n| n >= version) {
                continue;
            }
            let failed = |source| StoreError::Migration {
                version,
                name,
                source,
            };
            let mut tx = conn.begin().await.map_err(failed)?;
            // Claiming the version first serializes two workers starting on
            // a fresh database: the second waits on the row, then finds it
            // taken and skips the migration instead of failing halfway.
            let claimed = sqlx::query(
                "INSERT INTO smm_schema_migrations (version, name, applied_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (version) DO NOTHING",
            )
            .bind(version)
            .bind(name)
            .bind(Timestamp::now().to_string())
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
            if claimed.rows_affected() == 0 {
                tx.rollback().await.map_err(failed)?;
                continue;
            }
            for statement in statements(sql) {
                tx.execute(statement).await.map_err(failed)?;
            }
            tx.commit().await.map_err(failed)?;
            tracing::info!(
                version,
                name,
                backend = self.backend.name(),
                "migrated the panel store"
            );
        }
        Ok(())
    }

    /// Starts the unit of work for one event. `None` means `consumer` has
    /// already applied `event_id`: the caller acknowledges and skips it.
    pub async fn begin(&self, claim: Claim<'_>) -> Result<Option<Unit>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO processed_events (consumer, event_id, topic, partition_id, offset_id, processed_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (consumer, event_id) DO NOTHING",
        )
        .bind(claim.consumer)
        .bind(claim.event_id.to_string())
        .bind(claim.topic)
        .bind(i64::from(claim.partition))
        .bind(claim.offset)
        .bind(Timestamp::now().to_string())
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        Ok(Some(Unit {
            tx,
            consumer: claim.consumer.to_owned(),
            event_id: claim.event_id,
            correlation_id: claim.correlation_id.to_owned(),
            emitted: 0,
        }))
    }

    /// Whether `consumer` has applied `event_id`, for handlers that must
    /// check before an external call and claim only after it.
    pub async fn is_processed(&self, consumer: &str, event_id: Uuid) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM processed_events WHERE consumer = $1 AND event_id = $2",
        )
        .bind(consumer)
        .bind(event_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    /// Follow-up events of `event_id` not yet acknowledged by the broker, in
    /// the order they were emitted.
    pub async fn unsent(
        &self,
        consumer: &str,
        event_id: Option<Uuid>,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let rows = match event_id {
            Some(id) => {
                sqlx::query(
                    "SELECT id, topic, message_key, payload, correlation_id FROM outbox \
                     WHERE consumer = $1 AND source_event_id = $2 AND sent_at IS NULL ORDER BY position",
                )
                .bind(consumer)
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT id, topic, message_key, payload, correlation_id FROM outbox \
                     WHERE consumer = $1 AND sent_at IS NULL ORDER BY created_at, source_event_id, position",
                )
                .bind(consumer)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.into_iter()
            .map(|row| {
                Ok(OutboxRecord {
                    id: row.try_get("id")?,
                    topic: row.try_get("topic")?,
                    key: row.try_get("message_key")?,
                    payload: row.try_get("payload")?,
                    correlation_id: row.try_get("correlation_id")?,
                })
            })
            .collect()
    }

    pub async fn mark_sent(&self, outbox_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET sent_at = $1 WHERE id = $2")
            .bind(Timestamp::now().to_string())
            .bind(outbox_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether the store answers, for readiness.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// Splits a migration into statements. Migrations hold plain DDL, so a `;`
/// at the end of a line always ends a statement.
fn statements(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(";\n")
        .map(|s| {
            s.lines()
                .filter(|line| !line.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
        })
        .zip(sql.split(";\n"))
        .filter(|(code, _)| code.iter().any(|line| !line.trim().is_empty()))
        .map(|(_, statement)| statement.trim().trim_end_matches(';'))
}

/// What a unit of work claims: this consumer applies this event once.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub consumer: &'a str,
    pub event_id: Uuid,
    pub correlation_id: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// A follow-up event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    pub id: String,
    pub topic: String,
    pub key: Option<String>,
    pub payload: String,
    pub correlation_id: String,
}

/// One event's transaction: its dedup claim, its effects and the events it
/// emits commit together or not at all. Dropped without [`Unit::commit`],
/// it rolls back.
pub struct Unit {
    tx: Transaction<'static, sqlx::Any>,
    consumer: String,
    event_id: Uuid,
    correlation_id: String,
    emitted: i64,
}

impl Unit {
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    pub fn event_id(&self) -> Uuid {
        self.event_id
    }

    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    /// Queues a follow-up event; it is sent once this unit commits.
    pub async fn emit(
        &mut self,
        topic: &str,
        key: Option<&str>,
        envelope: &Envelope,
    ) -> Result<(), StoreError> {
        let payload = String::from_utf8_lossy(&envelope.to_json()).into_owned();
        sqlx::query(
            "INSERT INTO outbox (id, consumer, source_event_id, position, topic, message_key, payload, correlation_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(&self.consumer)
        .bind(self.event_id.to_string())
        .bind(self.emitted)
        .bind(topic)
        .bind(key)
        .bind(payload)
        .bind(&envelope.correlation_id)
        .bind(Timestamp::now().to_string())
        .execute(&mut *self.tx)
        .await?;
        self.emitted += 1;
        Ok(())
    }

    pub async fn audit(
        &mut self,
        action: &str,
        subject: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor, action, subject, detail, correlation_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(Timestamp::now().to_string())
        .bind(&self.consumer)
        .bind(action)
        .bind(subject)
        .bind(detail)
        .bind(&self.correlation_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_but_keeps_the_rest() {
        assert_eq!(
            redact_url("postgres://smm:hunter2@db.internal:5432/panel"),
            "postgres://smm:***@db.internal:5432/panel"
        );
        assert_eq!(
            redact_url("postgres://smm@db/panel"),
            "postgres://smm@db/panel"
        );
        assert_eq!(
            redact_url("sqlite:///var/lib/panel.db"),
            "sqlite:///var/lib/panel.db"
        );
        assert_eq!(
            redact_url("postgres://u:p@ss@host/db"),
            "postgres://u:***@host/db"
        );
    }

    #[test]
    fn sqlite_urls_create_their_file_and_others_are_refused() {
        assert_eq!(
            normalize_url("sqlite:///tmp/a.db").unwrap(),
            ("sqlite:///tmp/a.db?mode=rwc".to_owned(), Backend::Sqlite)
        );
        assert_eq!(
            normalize_url("sqlite:rel.db?mode=ro").unwrap(),
            ("sqlite://rel.db?mode=ro".to_owned(), Backend::Sqlite)
        );
        assert!(matches!(
            normalize_url("mysql://u:secret@h/db"),
            Err(StoreError::UnsupportedUrl(u)) if !u.contains("secret")
        ));
    }

    #[test]
    fn migrations_split_into_statements_without_comments_alone() {
        let parts: Vec<_> = statements(
            "-- head\nCREATE TABLE a (x INT);\n\n-- only a comment\n;\nCREATE INDEX i ON a (x);\n",
        )
        .collect();
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert!(parts[0].ends_with("CREATE TABLE a (x INT)"));
        assert_eq!(parts[1], "CREATE INDEX i ON a (x)");
        assert_eq!(statements(MIGRATIONS[0].2).count(), 11);
        assert_eq!(statements(MIGRATIONS[1].2).count(), 11);
    }
}
