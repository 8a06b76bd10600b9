//! `websocket` (the seed's WebSocketNotificationService): pushes order
//! status updates from `smm.order.status.updates` to the customers'
//! browsers.
//!
//! The consumer never waits for a browser. [`Hub::publish`] hands each
//! update to the subscribed clients' bounded queues with `try_send`; a
//! client whose queue is full is disconnected as too slow, so one stalled
//! tab can delay neither the consumer nor any other client. Each client's
//! socket is written by its own task, draining its own queue.
//!
//! Clients authenticate with a token the panel mints ([`mint_token`]) and
//! see only their own orders: an update goes to a client only when the
//! client's user owns it and the client subscribed to the order.

mod handler;
mod hub;
mod server;
mod tokens;

pub use handler::StatusFanOut;
pub use hub::{
    ClientId, Disconnect, Hub, HubStats, MAX_SUBSCRIPTIONS, PublishReport, QUEUE_CAPACITY,
    Registration, StatusMessage, SubscribeError,
};
pub use server::{PING_INTERVAL, PONG_TIMEOUT, serve};
pub use tokens::{TokenError, mint_token, verify_token};
