//! The HTTP servers: the webhook intake that feeds the payment topics and
//! the WebSocket server that pushes order updates to browsers.

pub mod gateway;
pub mod websocket;
