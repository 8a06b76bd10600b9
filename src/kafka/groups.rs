//! Consumer-group admin calls: the raw librdkafka ones from
//! `smm_kafka_ffi`, and the live-group check built on them, under one path.

pub use smm_kafka_ffi::groups::*;

pub use super::live_groups::{live_group_refusals, live_refusals, refuse_live_group};
