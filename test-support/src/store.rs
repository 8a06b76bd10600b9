//! Scratch panel stores: a SQLite file in a temporary directory, or a
//! PostgreSQL database of the test's own.

use std::path::Path;

use smm_workers::store::Store;

pub use smm_testbed::scratch::fresh_postgres;

/// The SQLite store in `dir`.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("panel.db").display())
}

/// A new SQLite file in a directory that lives as long as the returned guard.
pub fn fresh_sqlite() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    (sqlite_url(dir.path()), dir)
}

/// One store of each backend: the same test runs against both.
pub async fn both_stores(label: &str) -> Vec<(String, Store, Option<tempfile::TempDir>)> {
    let (sqlite_url, dir) = fresh_sqlite();
    let sqlite = Store::open(&sqlite_url).await.expect("open SQLite");
    let pg_url = fresh_postgres(label).await;
    let pg = Store::open(&pg_url).await.expect("open PostgreSQL");
    vec![(sqlite_url, sqlite, Some(dir)), (pg_url, pg, None)]
}

/// A fresh panel store of `backend` ("sqlite", in `dir`, or "postgres", a
/// database of its own named after `label`).
pub async fn store_url(backend: &str, dir: &tempfile::TempDir, label: &str) -> String {
    match backend {
        "sqlite" => sqlite_url(dir.path()),
        _ => fresh_postgres(label).await,
    }
}
