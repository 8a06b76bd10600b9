//! The `websocket` worker over real TCP with real WebSocket clients: who
//! may connect, what a subscriber receives through Kafka, and that a
//! stalled client is dropped instead of holding up hundreds of others.
// The load tests report their timings on stderr, from helpers shared by
// several tests.
#![allow(clippy::print_stderr)]

mod common;

use common::wait_until;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use smm_workers::contract::catalog::{self, retry_policy_for};
use smm_workers::contract::events::{
    Envelope, Event, OrderProgressUpdated, OrderStatus, OrderStatusUpdate,
};
use smm_workers::runtime::metrics::{Metrics, RecordOutcome};
use smm_workers::runtime::{self, Route, Shared, Worker};
use smm_workers::servers::websocket::{
    self, Hub, QUEUE_CAPACITY, StatusFanOut, StatusMessage, mint_token,
};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const SECRET: &[u8] = b"websocket test secret";

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Running {
    hub: Arc<Hub>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

async fn start_server() -> Running {
    let hub = Arc::new(Hub::new());
    let (stop, shutdown) = watch::channel(false);
    let (addr, task) = websocket::serve(
        "127.0.0.1:0".parse().unwrap(),
        hub.clone(),
        SECRET.to_vec(),
        shutdown,
    )
    .await
    .expect("bind the websocket server");
    Running {
        hub,
        addr,
        stop,
        task,
    }
}

fn token(user_id: i64) -> String {
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    mint_token(SECRET, user_id, expires)
}

async fn connect(addr: SocketAddr, user_id: i64) -> Client {
    let url = format!("ws://{addr}/ws?token={}", token(user_id));
    let (client, response) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the upgrade is accepted");
    assert_eq!(response.status(), 101);
    client
}

/// The refusal a connection attempt got: its status and JSON body.
async fn refused(request: tungstenite::handshake::client::Request) -> (u16, Value) {
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => panic!("the connection was accepted"),
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let value = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
            (response.status().as_u16(), value)
        }
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
    }
}

/// The next text message as JSON, skipping control frames; `None` when
/// nothing came within `within`.
async fn next_json(client: &mut Client, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let message = tokio::time::timeout_at(deadline, client.next())
            .await
            .ok()?;
        match message {
            Some(Ok(Message::Text(text))) => {
                return Some(serde_json::from_str(text.as_str()).expect("JSON from the server"));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

async fn send_json(client: &mut Client, value: Value) {
    client
        .send(Message::text(value.to_string()))
        .await
        .expect("send to the server");
}

async fn subscribe(client: &mut Client, order_ids: &[i64]) -> Value {
    send_json(
        client,
        json!({ "type": "subscribe", "order_ids": order_ids }),
    )
    .await;
    next_json(client, Duration::from_secs(5))
        .await
        .expect("a reply to subscribe")
}

/// Reads until the server's close frame, skipping anything before it.
async fn close_frame(client: &mut Client, within: Duration) -> Option<CloseFrame> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, client.next()).await {
            Err(_) => panic!("no close within {within:?}"),
            Ok(Some(Ok(Message::Close(frame)))) => return frame,
            Ok(Some(Ok(_))) => continue,
            Ok(None) | Ok(Some(Err(_))) => return None,
        }
    }
}

fn status_update(order_id: i64, user_id: i64, status: OrderStatus, message: String) -> Envelope {
    Envelope::new(
        Event::from(OrderStatusUpdate {
            order_id,
            user_id,
            status,
            progress_percent: None,
            message,
        }),
        format!("corr-{order_id}"),
    )
}

// ------------------------------------------------------------ Kafka side

struct FanOut {
    topic: String,
    producer: FutureProducer,
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), runtime::RuntimeError>>,
}

/// `StatusFanOut` consuming a topic of this test's own, with the status
/// updates' retry policy; returns once it has handled a first record, so
/// the measured updates do not wait for the group to form.
async fn start_fan_out(hub: &Arc<Hub>) -> FanOut {
    let topic = common::unique("ws-status");
    common::create_topics(&[&topic], 1).await;
    let mut route = Route::from(
        retry_policy_for(catalog::ORDER_STATUS_UPDATES).expect("a policy for status updates"),
    );
    route.main_topic = topic.clone();
    let client = common::client();
    let (stop, shutdown) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let shared = Shared {
        producer: runtime::producer(&client).expect("producer"),
        client,
        store: None,
        metrics: metrics.clone(),
        shutdown,
        drain_timeout: Duration::from_secs(5),
        instance: None,
    };
    let worker = Worker {
        name: "websocket".into(),
        group: common::unique("ws-group"),
        routes: vec![route],
        handler: StatusFanOut { hub: hub.clone() },
    };
    let task = tokio::spawn(runtime::run(worker, shared));
    let producer: FutureProducer = common::client()
        .set("linger.ms", "1")
        .create()
        .expect("producer");
    let warm_up = status_update(999_999, 999_999, OrderStatus::Active, "warm-up".into());
    send(&producer, &topic, &warm_up).await;
    let published = hub.stats().published;
    wait_until(
        "the worker to handle a first record",
        Duration::from_secs(30),
        || hub.stats().published > published,
    )
    .await;
    FanOut {
        topic,
        producer,
        metrics,
        stop,
        task,
    }
}

async fn send(producer: &FutureProducer, topic: &str, envelope: &Envelope) -> Instant {
    let payload = envelope.to_json();
    let key = envelope_order(envelope).to_string();
    let sent_at = Instant::now();
    producer
        .send(
            FutureRecord::to(topic).key(&key).payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce acknowledged");
    sent_at
}

fn envelope_order(envelope: &Envelope) -> i64 {
    match &envelope.event {
        Event::OrderStatusUpdate(u) => u.order_id,
        _ => 0,
    }
}

impl FanOut {
    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task
            .await
            .expect("the worker task")
            .expect("the worker ran");
    }
}

// ----------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_without_a_valid_token_are_refused_with_401() {
    let server = start_server().await;
    let url = |token: &str| format!("ws://{}/ws?token={token}", server.addr);

    let bare = format!("ws://{}/ws", server.addr);
    let (status, body) = refused(bare.as_str().into_client_request().unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthorized");
    assert!(
        body["message"].as_str().unwrap().contains("no token"),
        "{body}"
    );

    let tampered = token(3).replacen("v1.3.", "v1.4.", 1);
    let (status, body) = refused(url(&tampered).into_client_request().unwrap()).await;
    assert_eq!(status, 401);
    assert!(
        body["message"].as_str().unwrap().contains("signature"),
        "{body}"
    );

    let expired = mint_token(
        SECRET,
        3,
        jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1),
    );
    let (status, body) = refused(url(&expired).into_client_request().unwrap()).await;
    assert_eq!(status, 401);
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );

    let mut bad_bearer = bare.as_str().into_client_request().unwrap();
    bad_bearer.headers_mut().insert(
        "authorization",
        format!("Bearer {tampered}").parse().unwrap(),
    );
    assert_eq!(refused(bad_bearer).await.0, 401);

    // The same server lets a valid bearer token in.
    let mut bearer = bare.into_client_request().unwrap();
    bearer.headers_mut().insert(
        "authorization",
        format!("Bearer {}", token(3)).parse().unwrap(),
    );
    let (mut client, response) = tokio_tungstenite::connect_async(bearer)
        .await
        .expect("a valid bearer token is accepted");
    assert_eq!(response.status(), 101);
    assert_eq!(
        subscribe(&mut client, &[7]).await,
        json!({"type":"subscribed","order_ids":[7]})
    );
    assert_eq!(server.hub.stats().connected, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_messages_are_answered_and_bad_ones_do_not_close_the_connection() {
    let server = start_server().await;
    let mut client = connect(server.addr, 3).await;
    assert_eq!(
        subscribe(&mut client, &[2, 1]).await,
        json!({"type":"subscribed","order_ids":[1,2]})
    );
    for bad in [
        Message::text("{not json"),
        Message::text(r#"{"type":"subscribe","order_ids":["seven"]}"#),
        Message::text(r#"{"type":"shout"}"#),
        Message::binary(vec![1, 2, 3]),
    ] {
        client.send(bad).await.unwrap();
        let reply = next_json(&mut client, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(reply["type"], "error", "{reply}");
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let too_many: Vec<i64> = (100..1100).collect();
    let reply = subscribe(&mut client, &too_many).await;
    assert_eq!(reply["type"], "error");
    assert!(
        reply["message"].as_str().unwrap().contains("at most 1000"),
        "{reply}"
    );
    send_json(&mut client, json!({"type":"unsubscribe","order_ids":[1]})).await;
    assert_eq!(
        next_json(&mut client, Duration::from_secs(5))
            .await
            .unwrap(),
        json!({"type":"subscribed","order_ids":[2]})
    );
    let stats = server.hub.stats();
    assert_eq!((stats.connected, stats.subscriptions), (1, 1));

    // The health endpoint shows the same counters.
    let health: Value = reqwest::get(format!("http://{}/ws/health", server.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["connected"], 1);
    assert_eq!(health["subscriptions"], 1);

    client.close(None).await.unwrap();
    wait_until(
        "the client to be unregistered",
        Duration::from_secs(5),
        || server.hub.stats().connected == 0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_client_with_1001_and_the_server_returns() {
    let server = start_server().await;
    let mut a = connect(server.addr, 3).await;
    let mut b = connect(server.addr, 4).await;
    subscribe(&mut a, &[1]).await;
    subscribe(&mut b, &[2]).await;
    server.stop.send(true).unwrap();
    for client in [&mut a, &mut b] {
        let frame = close_frame(client, Duration::from_secs(5))
            .await
            .expect("a close frame");
        assert_eq!(u16::from(frame.code), 1001);
    }
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("serve returns after shutdown")
        .unwrap();
    assert_eq!(server.hub.stats().connected, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_gets_its_orders_updates_through_kafka_in_order_and_no_one_else_does() {
    let server = start_server().await;
    let fan_out = start_fan_out(&server.hub).await;
    let mut owner = connect(server.addr, 3).await;
    let mut stranger = connect(server.addr, 4).await;
    subscribe(&mut owner, &[7]).await;
    // The stranger watches order 7 too, and an order of its own to show
    // its connection works.
    subscribe(&mut stranger, &[7, 8]).await;

    // Another event type on the topic is a producer bug: dropped (the topic
    // has no dead letter), and nothing reaches a client.
    let wrong = Envelope::new(
        Event::from(OrderProgressUpdated {
            order_id: 7,
            delivered_quantity: 10,
            target_quantity: 100,
            percent: 10,
            reported_at: jiff::Timestamp::now(),
            start_count: None,
        }),
        "corr-ws-wrong",
    );
    send(&fan_out.producer, &fan_out.topic, &wrong).await;
    wait_until(
        "the wrong event to be dropped",
        Duration::from_secs(10),
        || fan_out.metrics.count("websocket", RecordOutcome::Dropped) == 1,
    )
    .await;

    let steps = [
        (OrderStatus::Active, None, "Payment received"),
        (OrderStatus::Processing, Some(10), "Views are on their way"),
        (OrderStatus::Processing, Some(60), "Views are on their way"),
        (OrderStatus::Completed, Some(100), "Delivered"),
    ];
    let mut sent = Vec::new();
    for (status, progress, message) in steps {
        let envelope = Envelope::new(
            Event::from(OrderStatusUpdate {
                order_id: 7,
                user_id: 3,
                status,
                progress_percent: progress,
                message: message.into(),
            }),
            "corr-ws-e2e",
        );
        let at = send(&fan_out.producer, &fan_out.topic, &envelope).await;
        sent.push((envelope, at));
    }
    for (envelope, sent_at) in &sent {
        let got = next_json(&mut owner, Duration::from_secs(3))
            .await
            .expect("the owner receives every update");
        let latency = sent_at.elapsed();
        let Event::OrderStatusUpdate(update) = &envelope.event else {
            unreachable!()
        };
        let expected = serde_json::to_value(StatusMessage::new(update, envelope)).unwrap();
        assert_eq!(got, expected, "in the order produced");
        assert_eq!(got["type"], "status");
        assert_eq!(got["event_id"], envelope.event_id.to_string());
        assert_eq!(got["correlation_id"], "corr-ws-e2e");
        assert!(
            latency < Duration::from_secs(1),
            "delivered {latency:?} after it was produced"
        );
    }
    assert_eq!(
        next_json(&mut owner, Duration::from_millis(300)).await,
        None
    );

    let own = status_update(8, 4, OrderStatus::Active, "yours".into());
    send(&fan_out.producer, &fan_out.topic, &own).await;
    let got = next_json(&mut stranger, Duration::from_secs(3))
        .await
        .expect("the stranger's own update");
    assert_eq!(
        (got["order_id"].as_i64(), got["message"].as_str()),
        (Some(8), Some("yours")),
        "nothing of user 3's order 7 reached user 4 before its own update"
    );
    assert_eq!(
        next_json(&mut stranger, Duration::from_millis(300)).await,
        None
    );
    fan_out.stop().await;
}

// ------------------------------------------------------------------ load

const CLIENTS: usize = 500;
/// Orders the stalled client watches, each updated once with a big
/// message: enough bytes to fill the socket buffers between it and the
/// server, and then its queue.
const STALLED_ORDERS: usize = 300;
const BIG_MESSAGE: usize = 24 * 1024;
const STALLED_USER: i64 = 77;

struct Received {
    order_id: i64,
    at: Instant,
    value: Value,
    /// Kept open until the checks are done, so the hub's count is exact.
    _client: Client,
}

/// Connects `CLIENTS` clients, each subscribed to its own order (user
/// 1000 + i, order 10_000 + i), and a stalled client of STALLED_USER
/// subscribed to STALLED_ORDERS orders (50_000 + i) that never reads
/// again. Each client task returns the first status it receives.
async fn load_clients(addr: SocketAddr) -> (Vec<JoinHandle<Received>>, Client) {
    let mut ready = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        ready.push(ready_rx);
        tasks.push(tokio::spawn(async move {
            let (user_id, order_id) = (1000 + i as i64, 10_000 + i as i64);
            let mut client = connect(addr, user_id).await;
            let reply = subscribe(&mut client, &[order_id]).await;
            assert_eq!(reply["order_ids"], json!([order_id]));
            let _ = ready_tx.send(());
            let value = next_json(&mut client, Duration::from_secs(30))
                .await
                .unwrap_or_else(|| panic!("client {i} received nothing"));
            let at = Instant::now();
            Received {
                order_id,
                at,
                value,
                _client: client,
            }
        }));
    }
    for r in ready {
        r.await.expect("a client connected and subscribed");
    }

    // A small receive buffer, so the stall reaches the server quickly.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let url = format!("ws://{addr}/ws?token={}", token(STALLED_USER));
    let (mut stalled, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .expect("the stalled client connects");
    let orders: Vec<i64> = (0..STALLED_ORDERS as i64).map(|i| 50_000 + i).collect();
    let reply = subscribe(&mut stalled, &orders).await;
    assert_eq!(
        reply["order_ids"].as_array().map(Vec::len),
        Some(STALLED_ORDERS)
    );
    (tasks, stalled)
}

/// What every load test asserts once the updates are out.
async fn check_load(
    hub: &Hub,
    tasks: Vec<JoinHandle<Received>>,
    sent_at: &std::collections::HashMap<i64, Instant>,
    mut stalled: Client,
    started: Instant,
) {
    let mut slowest = Duration::ZERO;
    let mut clients = Vec::new();
    for task in tasks {
        let received = task.await.expect("a client task");
        assert_eq!(received.value["type"], "status");
        assert_eq!(received.value["order_id"], received.order_id);
        assert_eq!(received.value["user_id"], received.order_id - 10_000 + 1000);
        let latency = received.at - sent_at[&received.order_id];
        slowest = slowest.max(latency);
        clients.push(received);
    }
    eprintln!(
        "{CLIENTS} clients served in {:?}; slowest delivery {slowest:?}",
        started.elapsed()
    );
    assert!(
        slowest < Duration::from_secs(1),
        "the slowest of {CLIENTS} deliveries took {slowest:?}"
    );
    wait_until(
        "the stalled client to be dropped",
        Duration::from_secs(5),
        || hub.stats().dropped_slow == 1,
    )
    .await;
    let stats = hub.stats();
    assert_eq!(stats.dropped_slow, 1, "{stats:?}");
    assert_eq!(stats.connected, CLIENTS, "only the stalled client left");
    assert!(stats.delivered >= CLIENTS as u64, "{stats:?}");

    // Reading again, the stalled client finds what it had been sent, then
    // the server's reason for closing.
    let mut statuses = 0;
    let frame = loop {
        match tokio::time::timeout(Duration::from_secs(15), stalled.next()).await {
            Err(_) => panic!("the stalled client was never closed"),
            Ok(Some(Ok(Message::Text(_)))) => statuses += 1,
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("connection ended without a close frame: {other:?}"),
        }
    };
    eprintln!(
        "the stalled client had {statuses} of its {STALLED_ORDERS} updates written before it was dropped"
    );
    let frame = frame.expect("a close frame with a reason");
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(
        frame.reason.as_str(),
        format!("too slow: {QUEUE_CAPACITY} updates queued")
    );
    assert!(
        statuses < STALLED_ORDERS,
        "it received {statuses} updates, so it was never stalled"
    );
    assert_eq!(hub.stats().connected, CLIENTS);
    drop(clients);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_clients_get_their_update_through_kafka_while_a_stalled_one_is_dropped() {
    let started = Instant::now();
    let server = start_server().await;
    let fan_out = start_fan_out(&server.hub).await;
    let (tasks, stalled) = load_clients(server.addr).await;

    let mut sent_at = std::collections::HashMap::new();
    let mut acks = Vec::new();
    for envelope in load_updates() {
        let order_id = envelope_order(&envelope);
        let payload = envelope.to_json();
        let key = order_id.to_string();
        let record = FutureRecord::to(&fan_out.topic).key(&key).payload(&payload);
        // Enqueued now, not when the ack is awaited.
        sent_at.insert(order_id, Instant::now());
        let ack = fan_out
            .producer
            .send_result(record)
            .map_err(|(e, _)| e)
            .expect("enqueued");
        acks.push(ack);
    }
    for ack in acks {
        ack.await.expect("a delivery report").expect("acknowledged");
    }
    check_load(&server.hub, tasks, &sent_at, stalled, started).await;
    fan_out.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

/// One small update per client's order, interleaved with the stalled
/// client's large ones, so it fills up while the others' go out.
fn load_updates() -> Vec<Envelope> {
    let big = "x".repeat(BIG_MESSAGE);
    let mut updates = Vec::new();
    for i in 0..CLIENTS.max(STALLED_ORDERS) {
        if i < CLIENTS {
            let order_id = 10_000 + i as i64;
            updates.push(status_update(
                order_id,
                1000 + i as i64,
                OrderStatus::Processing,
                format!("update for {order_id}"),
            ));
        }
        if i < STALLED_ORDERS {
            updates.push(status_update(
                50_000 + i as i64,
                STALLED_USER,
                OrderStatus::Processing,
                big.clone(),
            ));
        }
    }
    updates
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_clients_get_their_update_from_the_hub_while_a_stalled_one_is_dropped() {
    let started = Instant::now();
    let server = start_server().await;
    let (tasks, stalled) = load_clients(server.addr).await;

    let mut sent_at = std::collections::HashMap::new();
    let mut slowest_publish = Duration::ZERO;
    for envelope in load_updates() {
        let Event::OrderStatusUpdate(update) = &envelope.event else {
            unreachable!()
        };
        let now = Instant::now();
        sent_at.insert(update.order_id, now);
        server.hub.publish(&StatusMessage::new(update, &envelope));
        slowest_publish = slowest_publish.max(now.elapsed());
        // Let the socket tasks run between publishes, as they would
        // between records from Kafka.
        tokio::task::yield_now().await;
    }
    assert!(
        slowest_publish < Duration::from_millis(100),
        "a publish took {slowest_publish:?}"
    );
    check_load(&server.hub, tasks, &sent_at, stalled, started).await;
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
