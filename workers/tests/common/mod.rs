//! Test support: a fresh database of each backend per test.
#![allow(dead_code)]

use smm_workers::store::Store;
use sqlx::Connection as _;

/// The PostgreSQL server `scripts/postgres start` provides, or the one
/// SMM_TEST_DATABASE_URL names. Tests create a database of their own on it.
pub fn postgres_admin_url() -> String {
    std::env::var("SMM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://smm:smm-test-password@127.0.0.1:5432/smm_test".into())
}

/// A new, empty PostgreSQL database, named after the test.
pub async fn fresh_postgres(label: &str) -> String {
    sqlx::any::install_default_drivers();
    let admin = postgres_admin_url();
    let name = format!(
        "smm_t_{}_{}",
        label.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut conn = sqlx::AnyConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "no PostgreSQL at {} ({e}). Start it with `scripts/postgres start`, \
             or point SMM_TEST_DATABASE_URL at one whose role may create databases.",
                smm_workers::store::redact_url(&admin)
            )
        });
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    let (base, _) = admin.rsplit_once('/').expect("a database URL has a path");
    format!("{base}/{name}")
}

/// A new SQLite file in a directory that lives as long as the returned guard.
pub fn fresh_sqlite() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("panel.db").display());
    (url, dir)
}

/// One store of each backend: the same test runs against both.
pub async fn both_stores(label: &str) -> Vec<(String, Store, Option<tempfile::TempDir>)> {
    let (sqlite_url, dir) = fresh_sqlite();
    let sqlite = Store::open(&sqlite_url).await.expect("open SQLite");
    let pg_url = fresh_postgres(label).await;
    let pg = Store::open(&pg_url).await.expect("open PostgreSQL");
    vec![(sqlite_url, sqlite, Some(dir)), (pg_url, pg, None)]
}
