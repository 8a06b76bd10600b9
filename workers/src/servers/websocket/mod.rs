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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::{SinkExt as _, StreamExt as _};
use hmac::{Hmac, Mac as _};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::contract::events::{Envelope, OrderStatus, OrderStatusUpdate};
use crate::runtime::{Delivery, Failure, Handled, Handler};

use crate::workers::event_of;

/// Updates a client may have waiting before it counts as too slow. A
/// browser that keeps up never has more than a few; 64 absorbs a burst
/// (an order moving through several states at once) without letting a
/// dead tab hold memory for long.
pub const QUEUE_CAPACITY: usize = 64;

/// Orders one connection may watch. A customer's order page watches a
/// handful; the cap keeps one connection from making every publish walk a
/// huge subscription set.
pub const MAX_SUBSCRIPTIONS: usize = 1000;

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

/// Tokens longer than this are rejected before any parsing or hashing.
const MAX_TOKEN_LEN: usize = 256;

const TOKEN_VERSION: &str = "v1";

type HmacSha256 = Hmac<Sha256>;

// ---------------------------------------------------------------- tokens

/// Why a connection token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "the token is malformed ({0}); expected v1.<user id>.<expiry in unix seconds>.<signature> as issued by the panel"
    )]
    Malformed(&'static str),
    #[error(
        "the token's signature does not match: it was altered, or signed with another secret; ask the panel for a new token"
    )]
    BadSignature,
    #[error("the token expired at {expired_at}; ask the panel for a new token")]
    Expired { expired_at: Timestamp },
}

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length (long ones are hashed first), so
    // this cannot fail; the match only spares the fallible signature.
    match <HmacSha256 as hmac::Mac>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    }
}

/// A token that lets `user_id` connect until `expires_at` (to the second).
pub fn mint_token(secret: &[u8], user_id: i64, expires_at: Timestamp) -> String {
    let signed = format!("{TOKEN_VERSION}.{user_id}.{}", expires_at.as_second());
    let mut mac = mac(secret);
    mac.update(signed.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{signature}")
}

/// The user id a token was minted for, if it is intact and not expired
/// at `now`.
pub fn verify_token(secret: &[u8], token: &str, now: Timestamp) -> Result<i64, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("too long"));
    }
    let Some((signed, signature)) = token.rsplit_once('.') else {
        return Err(TokenError::Malformed("no signature"));
    };
    let mut parts = signed.split('.');
    let (Some(version), Some(user), Some(expiry), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("wrong number of fields"));
    };
    if version != TOKEN_VERSION {
        return Err(TokenError::Malformed("unknown version"));
    }
    // Digits only: `+7` or `007` would parse to a user id too, and a token
    // is easier to reason about when each user id has one spelling.
    let canonical = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
    };
    if !canonical(user) {
        return Err(TokenError::Malformed("the user id is not a number"));
    }
    let user_id: i64 = user
        .parse()
        .map_err(|_| TokenError::Malformed("the user id is out of range"))?;
    let expiry_ok = canonical(expiry) || expiry.strip_prefix('-').is_some_and(canonical);
    if !expiry_ok {
        return Err(TokenError::Malformed("the expiry is not a number"));
    }
    let expires: i64 = expiry
        .parse()
        .map_err(|_| TokenError::Malformed("the expiry is out of range"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed("the signature is not base64url"))?;
    let mut mac = mac(secret);
    mac.update(signed.as_bytes());
    // Checked before the expiry, so a forged token learns nothing else.
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;
    let expired_at = Timestamp::from_second(expires)
        .map_err(|_| TokenError::Malformed("the expiry is out of range"))?;
    if expired_at <= now {
        return Err(TokenError::Expired { expired_at });
    }
    Ok(user_id)
}

// ------------------------------------------------------------------ hub

/// One status update as clients receive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename = "status")]
pub struct StatusMessage {
    pub order_id: i64,
    pub user_id: i64,
    pub status: OrderStatus,
    pub progress_percent: Option<u8>,
    pub message: String,
    pub event_id: Uuid,
    pub correlation_id: String,
    pub occurred_at: Timestamp,
}

impl StatusMessage {
    /// The update with its envelope's identity, for tracing it end to end.
    pub fn new(update: &OrderStatusUpdate, envelope: &Envelope) -> StatusMessage {
        StatusMessage {
            order_id: update.order_id,
            user_id: update.user_id,
            status: update.status,
            progress_percent: update.progress_percent,
            message: update.message.clone(),
            event_id: envelope.event_id,
            correlation_id: envelope.correlation_id.clone(),
            occurred_at: envelope.occurred_at,
        }
    }
}

/// Identifies one connection within a hub.
pub type ClientId = u64;

/// Why the hub let go of a client; its socket closes with this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    pub code: u16,
    pub reason: String,
}

/// A client as the hub registered it: the receiving ends its socket
/// tasks drain.
#[derive(Debug)]
pub struct Registration {
    pub id: ClientId,
    pub updates: mpsc::Receiver<Utf8Bytes>,
    /// Fires when the hub drops the client; closed without a value when the
    /// client is unregistered normally.
    pub disconnected: oneshot::Receiver<Disconnect>,
}

/// What one publish did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Clients the update was queued for.
    pub delivered: usize,
    /// Clients dropped because their queue was full.
    pub dropped_slow: usize,
    /// Subscribers of the order who are another user, and got nothing.
    pub other_user: usize,
}

/// The hub's counters, as `/ws/health` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HubStats {
    pub connected: usize,
    pub subscriptions: usize,
    pub published: u64,
    /// Updates queued for a client (one per recipient).
    pub delivered: u64,
    pub dropped_slow: u64,
}

struct Client {
    user_id: i64,
    updates: mpsc::Sender<Utf8Bytes>,
    disconnect: oneshot::Sender<Disconnect>,
    orders: HashSet<i64>,
}

#[derive(Default)]
struct Registry {
    clients: HashMap<ClientId, Client>,
    by_order: HashMap<i64, HashSet<ClientId>>,
    subscriptions: usize,
}

impl Registry {
    fn remove(&mut self, id: ClientId) -> Option<Client> {
        let client = self.clients.remove(&id)?;
        for order in &client.orders {
            if let Some(ids) = self.by_order.get_mut(order) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_order.remove(order);
                }
            }
        }
        self.subscriptions -= client.orders.len();
        Some(client)
    }
}

/// Why a subscription change was refused; the client is told this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error(
        "at most {limit} subscriptions per connection; this would make {wanted}, so none were added (unsubscribe from finished orders first)"
    )]
    TooMany { limit: usize, wanted: usize },
    #[error("order id {0} is not a positive integer")]
    BadOrderId(i64),
    #[error("this connection is closing")]
    Gone,
}

/// The connected clients and what each watches. Shared as `Arc<Hub>` by
/// the consumer and the socket tasks; no lock is held across an await.
#[derive(Default)]
pub struct Hub {
    registry: RwLock<Registry>,
    next_id: AtomicU64,
    published: AtomicU64,
    delivered: AtomicU64,
    dropped_slow: AtomicU64,
}

impl Hub {
    pub fn new() -> Hub {
        Hub::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        // A panic elsewhere cannot leave the registry half-updated in a
        // way that matters more than refusing every client would.
        self.registry.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a client of `user_id` with an empty subscription set.
    pub fn register(&self, user_id: i64) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (updates_tx, updates) = mpsc::channel(QUEUE_CAPACITY);
        let (disconnect, disconnected) = oneshot::channel();
        self.write().clients.insert(
            id,
            Client {
                user_id,
                updates: updates_tx,
                disconnect,
                orders: HashSet::new(),
            },
        );
        Registration {
            id,
            updates,
            disconnected,
        }
    }

    /// Forgets a client; a no-op when the hub already dropped it.
    pub fn unregister(&self, id: ClientId) {
        self.write().remove(id);
    }

    /// Adds `order_ids` to the client's subscriptions, all or none, and
    /// returns the whole set, sorted.
    pub fn subscribe(&self, id: ClientId, order_ids: &[i64]) -> Result<Vec<i64>, SubscribeError> {
        if let Some(&bad) = order_ids.iter().find(|&&o| o <= 0) {
            return Err(SubscribeError::BadOrderId(bad));
        }
        let mut registry = self.write();
        let registry = &mut *registry;
        let client = registry.clients.get_mut(&id).ok_or(SubscribeError::Gone)?;
        let new: BTreeSet<i64> = order_ids
            .iter()
            .copied()
            .filter(|o| !client.orders.contains(o))
            .collect();
        let wanted = client.orders.len() + new.len();
        if wanted > MAX_SUBSCRIPTIONS {
            return Err(SubscribeError::TooMany {
                limit: MAX_SUBSCRIPTIONS,
                wanted,
            });
        }
        for order in &new {
            client.orders.insert(*order);
            registry.by_order.entry(*order).or_default().insert(id);
        }
        registry.subscriptions += new.len();
        Ok(sorted(&client.orders))
    }

    /// Removes `order_ids` from the client's subscriptions and returns what
    /// is left, sorted. Ids it did not watch are ignored.
    pub fn unsubscribe(&self, id: ClientId, order_ids: &[i64]) -> Result<Vec<i64>, SubscribeError> {
        let mut registry = self.write();
        let registry = &mut *registry;
        let client = registry.clients.get_mut(&id).ok_or(SubscribeError::Gone)?;
        for order in order_ids {
            if client.orders.remove(order) {
                registry.subscriptions -= 1;
                if let Some(ids) = registry.by_order.get_mut(order) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        registry.by_order.remove(order);
                    }
                }
            }
        }
        Ok(sorted(&client.orders))
    }

    /// Queues `update` for every client of its user that watches its
    /// order. Never waits: a client whose queue is full is dropped as too
    /// slow instead.
    pub fn publish(&self, update: &StatusMessage) -> PublishReport {
        self.published.fetch_add(1, Ordering::Relaxed);
        let mut report = PublishReport::default();
        let text = match serde_json::to_string(update) {
            Ok(text) => Utf8Bytes::from(text),
            Err(e) => {
                tracing::error!(error = %e, order_id = update.order_id, "cannot render a status update; no client gets it");
                return report;
            }
        };
        let mut full = Vec::new();
        {
            let registry = self.read();
            let Some(ids) = registry.by_order.get(&update.order_id) else {
                return report;
            };
            for id in ids {
                let Some(client) = registry.clients.get(id) else {
                    continue;
                };
                if client.user_id != update.user_id {
                    report.other_user += 1;
                    continue;
                }
                match client.updates.try_send(text.clone()) {
                    Ok(()) => report.delivered += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        let queued = client.updates.max_capacity() - client.updates.capacity();
                        full.push((*id, queued));
                    }
                    // Its socket tasks are ending and will unregister it.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
        self.delivered
            .fetch_add(report.delivered as u64, Ordering::Relaxed);
        if !full.is_empty() {
            let mut registry = self.write();
            for (id, queued) in full {
                // Another publish may have dropped it between the locks;
                // only the one that removes it counts it.
                let Some(client) = registry.remove(id) else {
                    continue;
                };
                report.dropped_slow += 1;
                tracing::warn!(
                    client = id,
                    user_id = client.user_id,
                    queued,
                    "client too slow; disconnecting it"
                );
                let _ = client.disconnect.send(Disconnect {
                    code: close_code::POLICY,
                    reason: format!("too slow: {queued} updates queued"),
                });
            }
            self.dropped_slow
                .fetch_add(report.dropped_slow as u64, Ordering::Relaxed);
        }
        report
    }

    pub fn stats(&self) -> HubStats {
        let (connected, subscriptions) = {
            let registry = self.read();
            (registry.clients.len(), registry.subscriptions)
        };
        HubStats {
            connected,
            subscriptions,
            published: self.published.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped_slow: self.dropped_slow.load(Ordering::Relaxed),
        }
    }
}

fn sorted(orders: &HashSet<i64>) -> Vec<i64> {
    let mut ids: Vec<i64> = orders.iter().copied().collect();
    ids.sort_unstable();
    ids
}

// --------------------------------------------------------------- server

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

// -------------------------------------------------------------- handler

/// Pushes each `OrderStatusUpdate` to the connected clients. Needs no
/// store: an update is a notice about state the store already holds, and
/// a client that missed one reloads the order.
pub struct StatusFanOut {
    pub hub: Arc<Hub>,
}

impl Handler for StatusFanOut {
    async fn handle<'a>(&'a self, delivery: &'a Delivery<'a>) -> Result<Handled, Failure> {
        let envelope = delivery.envelope()?;
        let update = event_of!(envelope, OrderStatusUpdate)?;
        let report = self.hub.publish(&StatusMessage::new(update, &envelope));
        tracing::debug!(
            order_id = update.order_id,
            delivered = report.delivered,
            dropped_slow = report.dropped_slow,
            "status update fanned out"
        );
        Ok(Handled::Applied(envelope.event_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test secret, long enough to be real";

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    #[test]
    fn a_minted_token_verifies_to_its_user_until_it_expires() {
        let token = mint_token(SECRET, 42, at(2_000_000_000));
        assert!(token.starts_with("v1.42.2000000000."), "{token}");
        assert_eq!(verify_token(SECRET, &token, at(1_999_999_999)), Ok(42));
        assert_eq!(
            verify_token(SECRET, &token, at(2_000_000_000)),
            Err(TokenError::Expired {
                expired_at: at(2_000_000_000)
            })
        );
    }

    #[test]
    fn a_token_with_another_user_id_fails_its_signature() {
        let token = mint_token(SECRET, 42, at(2_000_000_000));
        let tampered = token.replacen("v1.42.", "v1.43.", 1);
        assert_eq!(
            verify_token(SECRET, &tampered, at(1_000_000_000)),
            Err(TokenError::BadSignature)
        );
        let later = token.replacen(".2000000000.", ".2000000001.", 1);
        assert_eq!(
            verify_token(SECRET, &later, at(1_000_000_000)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_token_from_another_secret_fails_its_signature() {
        let token = mint_token(b"another secret", 42, at(2_000_000_000));
        assert_eq!(
            verify_token(SECRET, &token, at(1_000_000_000)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn an_expired_token_is_refused_even_when_intact() {
        let token = mint_token(SECRET, 7, at(1_000));
        let error = verify_token(SECRET, &token, at(1_001)).unwrap_err();
        assert_eq!(
            error,
            TokenError::Expired {
                expired_at: at(1_000)
            }
        );
        assert!(error.to_string().contains("ask the panel for a new token"));
    }

    #[test]
    fn malformed_tokens_say_what_is_wrong() {
        let good = mint_token(SECRET, 7, at(2_000_000_000));
        let signature = good.rsplit_once('.').unwrap().1;
        for (token, why) in [
            ("", "no signature"),
            ("v1", "no signature"),
            ("v1.7.2000000000", "wrong number of fields"),
            (&format!("v2.7.2000000000.{signature}"), "unknown version"),
            (
                &format!("v1.+7.2000000000.{signature}"),
                "the user id is not a number",
            ),
            (
                &format!("v1.07.2000000000.{signature}"),
                "the user id is not a number",
            ),
            (
                &format!("v1.x.2000000000.{signature}"),
                "the user id is not a number",
            ),
            (
                &format!("v1.7.soon.{signature}"),
                "the expiry is not a number",
            ),
            (
                "v1.7.2000000000.not*base64",
                "the signature is not base64url",
            ),
            (&format!("v1.7.2000000000.{}", "A".repeat(300)), "too long"),
        ] {
            assert_eq!(
                verify_token(SECRET, token, at(0)),
                Err(TokenError::Malformed(why)),
                "{token}"
            );
        }
        // A tampered signature that still decodes is a signature failure.
        let mut chars: Vec<char> = good.chars().collect();
        let last = chars.len() - 2;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        let flipped: String = chars.into_iter().collect();
        assert_eq!(
            verify_token(SECRET, &flipped, at(0)),
            Err(TokenError::BadSignature)
        );
    }

    fn update(order_id: i64, user_id: i64, message: &str) -> StatusMessage {
        StatusMessage {
            order_id,
            user_id,
            status: OrderStatus::Active,
            progress_percent: None,
            message: message.into(),
            event_id: Uuid::new_v4(),
            correlation_id: "corr-1".into(),
            occurred_at: at(1_700_000_000),
        }
    }

    #[test]
    fn the_wire_form_is_tagged_status_with_every_field() {
        let message = StatusMessage {
            progress_percent: Some(40),
            ..update(7, 3, "Your order is running")
        };
        let value: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&message).unwrap()).unwrap();
        assert_eq!(
            value,
            json!({
                "type": "status",
                "order_id": 7,
                "user_id": 3,
                "status": "ACTIVE",
                "progress_percent": 40,
                "message": "Your order is running",
                "event_id": message.event_id.to_string(),
                "correlation_id": "corr-1",
                "occurred_at": "2023-11-14T22:13:20Z",
            })
        );
    }

    #[test]
    fn only_subscribers_of_the_orders_user_get_an_update() {
        let hub = Hub::new();
        let mut owner = hub.register(3);
        let mut other_order = hub.register(3);
        let mut other_user = hub.register(4);
        let mut nothing = hub.register(3);
        hub.subscribe(owner.id, &[7, 8]).unwrap();
        hub.subscribe(other_order.id, &[8]).unwrap();
        hub.subscribe(other_user.id, &[7]).unwrap();

        let report = hub.publish(&update(7, 3, "hello"));
        assert_eq!(
            report,
            PublishReport {
                delivered: 1,
                dropped_slow: 0,
                other_user: 1
            }
        );
        let got = owner.updates.try_recv().unwrap();
        assert!(got.as_str().contains("\"message\":\"hello\""), "{got}");
        assert!(owner.updates.try_recv().is_err(), "one update, once");
        assert!(other_order.updates.try_recv().is_err());
        assert!(other_user.updates.try_recv().is_err());
        assert!(nothing.updates.try_recv().is_err());

        assert_eq!(hub.unsubscribe(owner.id, &[7, 99]).unwrap(), vec![8]);
        assert_eq!(hub.publish(&update(7, 3, "again")).delivered, 0);
        assert!(owner.updates.try_recv().is_err(), "unsubscribed");
        assert_eq!(hub.stats().subscriptions, 3);
    }

    #[test]
    fn a_full_queue_drops_only_that_client() {
        let hub = Hub::new();
        let mut stalled = hub.register(3);
        let mut reader = hub.register(3);
        hub.subscribe(stalled.id, &[7]).unwrap();
        hub.subscribe(reader.id, &[7]).unwrap();

        for n in 0..QUEUE_CAPACITY {
            let report = hub.publish(&update(7, 3, &format!("update {n}")));
            assert_eq!(report.delivered, 2);
            assert!(reader.updates.try_recv().is_ok());
        }
        assert!(
            stalled.disconnected.try_recv().is_err(),
            "not dropped while its queue has room"
        );
        let report = hub.publish(&update(7, 3, "one too many"));
        assert_eq!((report.delivered, report.dropped_slow), (1, 1));
        assert_eq!(
            stalled.disconnected.try_recv().unwrap(),
            Disconnect {
                code: 1008,
                reason: format!("too slow: {QUEUE_CAPACITY} updates queued")
            }
        );
        let got = reader.updates.try_recv().unwrap();
        assert!(got.as_str().contains("one too many"));

        // Dropped for good: later updates skip it and count it once.
        let report = hub.publish(&update(7, 3, "after"));
        assert_eq!((report.delivered, report.dropped_slow), (1, 0));
        let stats = hub.stats();
        assert_eq!(stats.connected, 1);
        assert_eq!(stats.subscriptions, 1);
        assert_eq!(stats.dropped_slow, 1);
        assert_eq!(stats.published, QUEUE_CAPACITY as u64 + 2);
        assert_eq!(stats.delivered, 2 * QUEUE_CAPACITY as u64 + 2);
        // What it had queued stays readable; nothing more was added.
        let mut queued = 0;
        while stalled.updates.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, QUEUE_CAPACITY);
        assert_eq!(hub.subscribe(stalled.id, &[9]), Err(SubscribeError::Gone));
    }

    #[test]
    fn subscriptions_are_capped_all_or_nothing() {
        let hub = Hub::new();
        let client = hub.register(3);
        let first: Vec<i64> = (1..=MAX_SUBSCRIPTIONS as i64 - 1).collect();
        assert_eq!(
            hub.subscribe(client.id, &first).unwrap().len(),
            MAX_SUBSCRIPTIONS - 1
        );
        // Repeats do not count twice.
        assert_eq!(
            hub.subscribe(client.id, &[1, 2]).unwrap().len(),
            MAX_SUBSCRIPTIONS - 1
        );
        let over = [5_000, 5_001];
        assert_eq!(
            hub.subscribe(client.id, &over),
            Err(SubscribeError::TooMany {
                limit: MAX_SUBSCRIPTIONS,
                wanted: MAX_SUBSCRIPTIONS + 1
            })
        );
        assert_eq!(hub.stats().subscriptions, MAX_SUBSCRIPTIONS - 1);
        assert_eq!(
            hub.subscribe(client.id, &[5_000]).unwrap().len(),
            MAX_SUBSCRIPTIONS
        );
        assert_eq!(
            hub.subscribe(client.id, &[0]),
            Err(SubscribeError::BadOrderId(0))
        );
        hub.unregister(client.id);
        let stats = hub.stats();
        assert_eq!((stats.connected, stats.subscriptions), (0, 0));
    }

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
