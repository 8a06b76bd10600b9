//! Throwaway databases for tests and benchmarks: a new, empty PostgreSQL
//! database per caller, so runs never see each other's rows.

use sqlx::Connection as _;

use smm_workers::store::redact_url;

/// The server `scripts/postgres start` provides, or SMM_TEST_DATABASE_URL.
pub fn postgres_admin_url() -> String {
    std::env::var("SMM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://smm:smm-test-password@127.0.0.1:5432/smm_test".into())
}

/// Creates a database named after `label` and returns its URL. Panics with
/// what to do when no server answers: it is for tests only.
pub async fn fresh_postgres(label: &str) -> String {
    sqlx::any::install_default_drivers();
    let admin = postgres_admin_url();
    let name = format!(
        "smm_t_{}_{}",
        label.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut conn = match sqlx::AnyConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) => panic!(
            "no PostgreSQL at {} ({e}). Start it with `scripts/postgres start`, \
             or point SMM_TEST_DATABASE_URL at one whose role may create databases.",
            redact_url(&admin)
        ),
    };
    if let Err(e) = sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
    {
        panic!("cannot create the test database {name}: {e}");
    }
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{name}")
}
