//! What the panel's services agree on: the topics, the events on them, and
//! the headers that carry a record's retry and dead-letter history.

pub mod catalog;
pub mod dead_letter;
pub mod events;
pub mod headers;
pub mod legacy;
