//! Shared by the workers crate's integration tests, from
//! `smm_test_support`, under the names these tests use.
// Each test binary compiles this module and uses a part of it.
#![allow(dead_code, unused_imports)]

pub use smm_test_support::kafka::{
    bare_client_config as client, brokers, create_topics, ensure_topic, produce_one as produce,
};
pub use smm_test_support::read::{Read, read, read_matching};
pub use smm_test_support::runtime::{renamed, shared, wait_until};
pub use smm_test_support::store::{both_stores, fresh_postgres, fresh_sqlite};
pub use smm_test_support::unique_id as unique;
