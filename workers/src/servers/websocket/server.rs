//! The WebSocket server: token checks at the upgrade, one task pair per
//! connection, pings, and the close on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt as _, StreamExt as _};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use super::hub::{ClientId, Disconnect, Hub, HubStats, Registration};
use super::tokens::verify_token;

/// How often the server pings each client.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);

/// Silence after which a client counts as gone: three pings unanswered.
pub const PONG_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a close frame may take to reach a client that is not reading
/// before the connection is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A subscribe message for the full 1000 orders is about 20 KiB.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// Replies to a client's own messages waiting to be written. The reader
/// waits when it is full, which only slows the client that sent them.
const REPLY_CAPACITY: usize = 16;

#[derive(Clone)]
struct Server {
    hub: Arc<Hub>,
    secret: Arc<[u8]>,
    shutdown: watch::Receiver<bool>,
    /// Cloned into every connection task; `serve` is done once all clones
    /// are dropped.
    alive: mpsc::Sender<()>,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// A message from a client.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientMessage {
    Subscribe { order_ids: Vec<i64> },
    Unsubscribe { order_ids: Vec<i64> },
}

fn error_message(message: &str) -> Utf8Bytes {
    Utf8Bytes::from(json!({ "type": "error", "message": message }).to_string())
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(json!({ "type": "error", "error": "unauthorized", "message": message })),
    )
        .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

async fn upgrade(
    State(server): State<Server>,
    query: Result<Query<TokenQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let from_query = query.ok().and_then(|Query(q)| q.token);
    let Some(token) = bearer(&headers).or(from_query.as_deref()) else {
        return unauthorized(
            "no token: pass ?token=<token> or an Authorization: Bearer <token> header",
        );
    };
    let user_id = match verify_token(&server.secret, token, Timestamp::now()) {
        Ok(user_id) => user_id,
        Err(e) => return unauthorized(&e.to_string()),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| connection(socket, server, user_id))
}

async fn health(State(server): State<Server>) -> axum::Json<HubStats> {
    axum::Json(server.hub.stats())
}

/// Unregisters the client however its task ends.
struct Unregister {
    hub: Arc<Hub>,
    id: ClientId,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        self.hub.unregister(self.id);
    }
}

/// Why a connection's writer stopped.
enum Stop {
    Close(u16, String),
    /// The client went away or the reader ended; nothing left to say.
    Gone,
}

async fn stop_signal(
    disconnected: &mut oneshot::Receiver<Disconnect>,
    shutdown: &mut watch::Receiver<bool>,
) -> Stop {
    tokio::select! {
        dropped = disconnected => match dropped {
            Ok(d) => Stop::Close(d.code, d.reason),
            Err(_) => Stop::Gone,
        },
        // A dropped sender also means stop, as in the gateway.
        _ = shutdown.wait_for(|down| *down) => {
            Stop::Close(close_code::AWAY, "server shutting down".into())
        }
    }
}

async fn connection(socket: WebSocket, server: Server, user_id: i64) {
    let Server {
        hub,
        mut shutdown,
        alive,
        ..
    } = server;
    let Registration {
        id,
        mut updates,
        mut disconnected,
    } = hub.register(user_id);
    let unregister = Unregister {
        hub: hub.clone(),
        id,
    };
    tracing::debug!(client = id, user_id, "client connected");
    let (mut sink, stream) = socket.split();
    let (reply_tx, mut replies) = mpsc::channel(REPLY_CAPACITY);
    let started = Instant::now();
    let last_heard = Arc::new(AtomicU64::new(0));
    let mut reader = tokio::spawn(read_client(
        stream,
        hub.clone(),
        id,
        reply_tx,
        last_heard.clone(),
        started,
    ));
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let stop = loop {
        let next = tokio::select! {
            biased;
            stop = stop_signal(&mut disconnected, &mut shutdown) => break stop,
            reply = replies.recv() => match reply {
                Some(text) => Message::Text(text),
                None => break Stop::Gone,
            },
            update = updates.recv() => match update {
                Some(text) => Message::Text(text),
                None => break Stop::Gone,
            },
            _ = ping.tick() => {
                let silent = started.elapsed()
                    .saturating_sub(Duration::from_millis(last_heard.load(Ordering::Relaxed)));
                if silent > PONG_TIMEOUT {
                    break Stop::Close(
                        close_code::POLICY,
                        format!("no pong for {} s", silent.as_secs()),
                    );
                }
                Message::Ping(Bytes::new())
            }
        };
        // The write itself can wait on a client that does not read; being
        // dropped as too slow, or a shutdown, must still end it.
        tokio::select! {
            biased;
            stop = stop_signal(&mut disconnected, &mut shutdown) => break stop,
            sent = sink.send(next) => if sent.is_err() { break Stop::Gone },
        }
    };

    if let Stop::Close(code, reason) = stop {
        tracing::debug!(client = id, user_id, code, %reason, "closing client");
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
        // Let the client's closing reply arrive, so it sees a clean close
        // rather than a reset.
        if tokio::time::timeout(Duration::from_secs(1), &mut reader)
            .await
            .is_err()
        {
            reader.abort();
        }
    } else {
        // Flushes the reply to a client's own close frame, if it sent one.
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
        reader.abort();
    }
    tracing::debug!(client = id, user_id, "client disconnected");
    // Unregistered before `serve` may see the last connection end, so a
    // caller that waited for it finds the hub empty.
    drop(unregister);
    drop(alive);
}

async fn read_client(
    mut stream: futures_util::stream::SplitStream<WebSocket>,
    hub: Arc<Hub>,
    id: ClientId,
    replies: mpsc::Sender<Utf8Bytes>,
    last_heard: Arc<AtomicU64>,
    started: Instant,
) {
    while let Some(Ok(message)) = stream.next().await {
        // Any frame proves the client is there, not just a pong.
        let heard = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        last_heard.store(heard, Ordering::Relaxed);
        let reply = match message {
            Message::Text(text) => answer(&hub, id, text.as_str()),
            Message::Binary(_) => error_message("binary frames are not understood; send JSON text"),
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Close(_) => break,
        };
        if replies.send(reply).await.is_err() {
            break;
        }
    }
}

/// The reply to one text message from a client.
fn answer(hub: &Hub, id: ClientId, text: &str) -> Utf8Bytes {
    let message = match serde_json::from_str::<ClientMessage>(text) {
        Ok(message) => message,
        Err(e) => {
            return error_message(&format!(
                "cannot read this message ({e}); send {{\"type\":\"subscribe\",\"order_ids\":[1,2]}} or {{\"type\":\"unsubscribe\",\"order_ids\":[1]}}"
            ));
        }
    };
    let result = match message {
        ClientMessage::Subscribe { order_ids } => hub.subscribe(id, &order_ids),
        ClientMessage::Unsubscribe { order_ids } => hub.unsubscribe(id, &order_ids),
    };
    match result {
        Ok(order_ids) => {
            Utf8Bytes::from(json!({ "type": "subscribed", "order_ids": order_ids }).to_string())
        }
        Err(e) => error_message(&e.to_string()),
    }
}

/// Serves `GET /ws` (the WebSocket) and `GET /ws/health` (the hub's
/// counters) until `shutdown`, then closes every client with 1001 and
/// returns. Binds first, so a taken port fails the start; the bound
/// address is returned for callers that asked for port 0.
pub async fn serve(
    addr: SocketAddr,
    hub: Arc<Hub>,
    secret: Vec<u8>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    if secret.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the WebSocket token secret is empty; anyone could mint tokens",
        ));
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let (alive, mut all_gone) = mpsc::channel::<()>(1);
    let app = Router::new()
        .route("/ws", get(upgrade))
        .route("/ws/health", get(health))
        .with_state(Server {
            hub,
            secret: secret.into(),
            shutdown: shutdown.clone(),
            alive,
        });
    tracing::info!(addr = %bound, "websocket server listening");
    let mut stop = shutdown;
    Ok((
        bound,
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|down| *down).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!(error = %e, "the websocket server stopped");
            }
            // Upgraded connections outlive axum's graceful shutdown; each
            // closes itself on the same signal, within CLOSE_TIMEOUT and a
            // second for the reply.
            let _ =
                tokio::time::timeout(CLOSE_TIMEOUT + Duration::from_secs(2), all_gone.recv()).await;
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_get_a_reply_and_bad_ones_an_error() {
        let hub = Hub::new();
        let client = hub.register(3);
        let reply = |text: &str| -> serde_json::Value {
            serde_json::from_str(answer(&hub, client.id, text).as_str()).unwrap()
        };
        assert_eq!(
            reply(r#"{"type":"subscribe","order_ids":[9,2,2]}"#),
            json!({"type":"subscribed","order_ids":[2,9]})
        );
        assert_eq!(
            reply(r#"{"type":"unsubscribe","order_ids":[9]}"#),
            json!({"type":"subscribed","order_ids":[2]})
        );
        for bad in [
            "not json",
            r#"{"type":"dance"}"#,
            r#"{"type":"subscribe","order_ids":"7"}"#,
            r#"{"order_ids":[1]}"#,
        ] {
            let value = reply(bad);
            assert_eq!(value["type"], "error", "{bad}");
            assert!(
                value["message"].as_str().unwrap().contains("subscribe"),
                "{value}"
            );
        }
    }
}
