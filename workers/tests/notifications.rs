//! The `notifications` worker on the real broker and both store backends:
//! email through the SMTP sink, SMS and push through a provider served over
//! loopback HTTP by the test.

mod common;

use common::wait_until;

fn notifications_route(main: &str, dead_letter: &str) -> Route {
    common::renamed(
        retry_policy_for(catalog::NOTIFICATIONS).expect("catalog policy"),
        main,
        dead_letter,
    )
}

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use smm_testbed::smtp_sink::SmtpSink;
use smm_workers::contract::catalog::{self, retry_policy_for};
use smm_workers::contract::events::{Envelope, Event, Notification, NotificationChannel};
use smm_workers::contract::headers;
use smm_workers::runtime::metrics::{Metrics, RecordOutcome};
use smm_workers::runtime::{self, Route, Shared, Worker};
use smm_workers::store::Store;
use smm_workers::workers::notifications::{self, Notifications, NotifySettings, Senders};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const WORKER: &str = "notifications";
const API_KEY: &str = "provider-test-token";

/// A running worker on topics of its own.
struct Running {
    main: String,
    dlq: String,
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), runtime::RuntimeError>>,
}

impl Running {
    async fn start(store: &Store, settings: &NotifySettings) -> Running {
        let main = common::unique("notify");
        let dlq = format!("{main}.dlq");
        common::create_topics(&[&main, &dlq], 1).await;
        let client = common::client();
        let (stop, shutdown) = watch::channel(false);
        let shared = Shared {
            producer: runtime::producer(&client).expect("producer"),
            client,
            store: Some(store.clone()),
            metrics: Arc::new(Metrics::default()),
            shutdown,
            drain_timeout: Duration::from_secs(5),
            instance: None,
        };
        let metrics = shared.metrics.clone();
        let worker = Worker {
            name: WORKER.into(),
            group: common::unique("notify-group"),
            routes: vec![notifications_route(&main, &dlq)],
            handler: Notifications {
                store: store.clone(),
                senders: Senders::new(settings).expect("valid settings"),
            },
        };
        let task = tokio::spawn(runtime::run(worker, shared));
        Running {
            main,
            dlq,
            metrics,
            stop,
            task,
        }
    }

    async fn send(&self, envelope: &Envelope) {
        common::produce(&self.main, "user-7", &envelope.to_json(), &[]).await;
    }

    fn count(&self, outcome: RecordOutcome) -> u64 {
        self.metrics.count(WORKER, outcome)
    }

    fn settled(&self) -> u64 {
        self.count(RecordOutcome::Ok)
            + self.count(RecordOutcome::Duplicate)
            + self.count(RecordOutcome::DeadLettered)
    }

    async fn wait_settled(&self, want: u64, within: Duration) {
        wait_until(&format!("{want} notifications settled"), within, || {
            self.settled() >= want
        })
        .await;
    }

    async fn stop(self) -> Arc<Metrics> {
        let _ = self.stop.send(true);
        self.task.await.expect("worker task").expect("worker ran");
        self.metrics
    }
}

fn notification(id: &str, channel: NotificationChannel) -> Envelope {
    Envelope::new(
        Event::from(Notification {
            notification_id: id.to_owned(),
            user_id: 7,
            channel,
        }),
        format!("corr-{id}"),
    )
}

fn email(id: &str, to: &str) -> Envelope {
    notification(
        id,
        NotificationChannel::Email {
            to: to.to_owned(),
            subject: format!("Order update {id}"),
            body: format!("Your order is complete ({id})."),
        },
    )
}

fn sms(id: &str) -> Envelope {
    notification(
        id,
        NotificationChannel::Sms {
            to: "+15550001111".into(),
            text: format!("Order done ({id})"),
        },
    )
}

fn push(id: &str) -> Envelope {
    notification(
        id,
        NotificationChannel::Push {
            device_token: "device-abc".into(),
            title: "Order done".into(),
            body: format!("({id})"),
        },
    )
}

fn settings(smtp: Option<String>) -> NotifySettings {
    NotifySettings {
        smtp_url: smtp,
        mail_from: "SMM Panel <noreply@panel.example>".into(),
        sms_url: None,
        push_url: None,
        api_key: Some(API_KEY.into()),
        timeout: Duration::from_millis(1500),
    }
}

fn start_sink() -> SmtpSink {
    SmtpSink::start("127.0.0.1:0".parse().expect("address")).expect("SMTP sink")
}

async fn sent_rows(store: &Store) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM notifications_sent")
        .fetch_one(store.pool())
        .await
        .expect("count")
}

/// One call the provider got.
#[derive(Debug, Clone)]
struct Call {
    path: String,
    headers: HeaderMap,
    body: serde_json::Value,
    status: StatusCode,
}

/// SMS and push provider: answers by the notification id's prefix
/// (`flaky…` 503 once, `refused…` 422, anything else 200) and records
/// every call.
#[derive(Clone, Default)]
struct Provider {
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Provider {
    async fn start() -> (Provider, String) {
        let provider = Provider::default();
        let app = Router::new()
            .route("/sms", post(answer))
            .route("/push", post(answer))
            .with_state(provider.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        (provider, base)
    }

    fn calls_for(&self, id: &str) -> Vec<Call> {
        self.calls
            .lock()
            .expect("calls")
            .iter()
            .filter(|c| c.body["notification_id"] == id)
            .cloned()
            .collect()
    }
}

async fn answer(
    State(provider): State<Provider>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let id = body["notification_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut calls = provider.calls.lock().expect("calls");
    let earlier = calls
        .iter()
        .filter(|c| c.body["notification_id"] == id.as_str())
        .count();
    let (status, text) = if id.starts_with("flaky") && earlier == 0 {
        (StatusCode::SERVICE_UNAVAILABLE, "upstream busy".to_owned())
    } else if id.starts_with("refused") {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "{\"error\":\"device token unknown\"}".to_owned(),
        )
    } else {
        (StatusCode::OK, format!("{{\"message_id\":\"msg-{id}\"}}"))
    };
    calls.push(Call {
        path: uri.path().to_owned(),
        headers,
        body,
        status,
    });
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_reaches_the_mailbox_once_even_when_repeated_or_re_sent_under_a_new_event_id() {
    for (url, store, _guard) in common::both_stores("notify_email").await {
        let sink = start_sink();
        let running = Running::start(&store, &settings(Some(sink.url()))).await;

        let id = common::unique("mail");
        let first = email(&id, "buyer@example.com");
        let again_under_another_event = email(&id, "buyer@example.com");
        assert_ne!(first.event_id, again_under_another_event.event_id);
        let other_id = common::unique("mail");
        running.send(&first).await;
        running.send(&first).await;
        running.send(&again_under_another_event).await;
        running.send(&email(&other_id, "second@example.com")).await;
        running.wait_settled(4, Duration::from_secs(30)).await;
        let metrics = running.stop().await;

        assert_eq!(metrics.count(WORKER, RecordOutcome::Ok), 2, "{url}");
        assert_eq!(metrics.count(WORKER, RecordOutcome::Duplicate), 2, "{url}");
        assert_eq!(metrics.count(WORKER, RecordOutcome::Retried), 0, "{url}");
        let mails = sink.mails();
        assert_eq!(mails.len(), 2, "{url}: {mails:#?}");
        let ours: Vec<_> = mails
            .iter()
            .filter(|m| m.to == ["buyer@example.com"])
            .collect();
        assert_eq!(ours.len(), 1, "{url}: delivered exactly once");
        let mail = ours[0];
        assert_eq!(mail.from, "noreply@panel.example");
        assert_eq!(
            mail.header("Message-ID"),
            Some(format!("<{id}@smmctl>")),
            "{url}"
        );
        assert_eq!(
            mail.header("Subject"),
            Some(format!("Order update {id}")),
            "{url}"
        );
        assert_eq!(
            mail.body().trim_end(),
            format!("Your order is complete ({id})."),
            "{url}"
        );
        assert_eq!(sent_rows(&store).await, 2, "{url}");
        let sent = notifications::sent(&store, &id)
            .await
            .expect("read")
            .expect("recorded");
        assert_eq!(
            (sent.channel.as_str(), sent.recipient.as_str(), sent.user_id),
            ("email", "buyer@example.com", 7),
            "{url}"
        );
        assert!(
            sent.provider_reference
                .as_deref()
                .is_some_and(|r| r.starts_with("250")),
            "{url}: {sent:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_and_push_reach_the_provider_with_idempotency_key_and_bearer_token_and_a_503_is_retried()
 {
    let (provider, base) = Provider::start().await;
    for (url, store, _guard) in common::both_stores("notify_http").await {
        let mut settings = settings(None);
        settings.sms_url = Some(format!("{base}/sms"));
        settings.push_url = Some(format!("{base}/push"));
        let running = Running::start(&store, &settings).await;

        let text = common::unique("text");
        let pushed = common::unique("pushed");
        let flaky = common::unique("flaky");
        running.send(&sms(&text)).await;
        running.send(&push(&pushed)).await;
        let flaky_event = sms(&flaky);
        running.send(&flaky_event).await;
        running.send(&flaky_event).await;
        running.wait_settled(4, Duration::from_secs(30)).await;
        let metrics = running.stop().await;

        assert_eq!(metrics.count(WORKER, RecordOutcome::Ok), 3, "{url}");
        assert_eq!(metrics.count(WORKER, RecordOutcome::Duplicate), 1, "{url}");
        assert_eq!(metrics.count(WORKER, RecordOutcome::Retried), 1, "{url}");
        assert_eq!(
            metrics.count(WORKER, RecordOutcome::DeadLettered),
            0,
            "{url}"
        );

        let sms_calls = provider.calls_for(&text);
        assert_eq!(sms_calls.len(), 1, "{url}");
        let call = &sms_calls[0];
        assert_eq!(call.path, "/sms");
        assert_eq!(call.body["to"], "+15550001111");
        assert_eq!(call.body["text"], format!("Order done ({text})"));

        let push_calls = provider.calls_for(&pushed);
        assert_eq!(push_calls.len(), 1, "{url}");
        assert_eq!(push_calls[0].path, "/push");
        assert_eq!(push_calls[0].body["device_token"], "device-abc");
        assert_eq!(push_calls[0].body["title"], "Order done");
        assert_eq!(push_calls[0].body["body"], format!("({pushed})"));

        let flaky_calls = provider.calls_for(&flaky);
        let statuses: Vec<u16> = flaky_calls.iter().map(|c| c.status.as_u16()).collect();
        assert_eq!(statuses, [503, 200], "{url}: retried once, delivered once");

        for (id, calls) in [
            (&text, sms_calls),
            (&pushed, push_calls),
            (&flaky, flaky_calls),
        ] {
            for call in calls {
                assert_eq!(call.headers["idempotency-key"], id.as_str(), "{url}");
                assert_eq!(
                    call.headers["authorization"],
                    format!("Bearer {API_KEY}").as_str(),
                    "{url}"
                );
            }
        }
        assert_eq!(sent_rows(&store).await, 3, "{url}");
        let sent = notifications::sent(&store, &flaky)
            .await
            .expect("read")
            .expect("recorded");
        assert_eq!(
            (sent.channel.as_str(), sent.recipient.as_str()),
            ("sms", "+15550001111"),
            "{url}"
        );
        assert_eq!(
            sent.provider_reference,
            Some(format!("{{\"message_id\":\"msg-{flaky}\"}}")),
            "{url}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_sent_while_the_mail_server_is_down_is_retried_and_delivered_once_it_is_up() {
    for (url, store, _guard) in common::both_stores("notify_down").await {
        // A port nothing listens on until the sink takes it.
        let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let running = Running::start(&store, &settings(Some(format!("smtp://{addr}")))).await;
        let id = common::unique("mail");
        running.send(&email(&id, "buyer@example.com")).await;
        wait_until("the first refused attempt", Duration::from_secs(30), || {
            running.count(RecordOutcome::Retried) >= 1
        })
        .await;
        let sink = SmtpSink::start(addr).expect("sink on the reserved port");
        running.wait_settled(1, Duration::from_secs(20)).await;
        let metrics = running.stop().await;

        assert_eq!(metrics.count(WORKER, RecordOutcome::Ok), 1, "{url}");
        assert_eq!(
            metrics.count(WORKER, RecordOutcome::DeadLettered),
            0,
            "{url}"
        );
        let mails = sink.mails();
        assert_eq!(mails.len(), 1, "{url}");
        assert_eq!(
            mails[0].header("Message-ID"),
            Some(format!("<{id}@smmctl>"))
        );
        assert_eq!(sent_rows(&store).await, 1, "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_unconfigured_channels_go_to_the_dlq_with_the_reason_without_retries() {
    let (provider, base) = Provider::start().await;
    for (url, store, _guard) in common::both_stores("notify_dlq").await {
        let sink = start_sink();
        sink.reject("reject-*@*");
        let mut settings = settings(Some(sink.url()));
        settings.push_url = Some(format!("{base}/push"));
        // sms_url stays unset.
        let running = Running::start(&store, &settings).await;

        let unknown_mailbox = common::unique("mail");
        let refused = common::unique("refused");
        let no_sms = common::unique("text");
        let events = [
            email(&unknown_mailbox, "reject-me@example.com"),
            push(&refused),
            sms(&no_sms),
        ];
        for event in &events {
            running.send(event).await;
        }
        running.wait_settled(3, Duration::from_secs(30)).await;
        let dlq = running.dlq.clone();
        let metrics = running.stop().await;

        assert_eq!(
            metrics.count(WORKER, RecordOutcome::DeadLettered),
            3,
            "{url}"
        );
        assert_eq!(metrics.count(WORKER, RecordOutcome::Retried), 0, "{url}");
        assert_eq!(metrics.count(WORKER, RecordOutcome::Ok), 0, "{url}");
        assert!(sink.mails().is_empty(), "{url}");
        assert_eq!(
            provider.calls_for(&refused).len(),
            1,
            "{url}: a 4xx is not retried"
        );
        assert_eq!(sent_rows(&store).await, 0, "{url}");

        let dead = common::read(&dlq, 3, Duration::from_secs(10));
        assert_eq!(dead.len(), 3, "{url}");
        let text =
            |bytes: Option<&[u8]>| String::from_utf8_lossy(bytes.unwrap_or_default()).into_owned();
        let reasons: Vec<(String, String)> = dead
            .iter()
            .map(|r| {
                (
                    text(r.header(headers::EXCEPTION_FQCN)),
                    text(r.header(headers::EXCEPTION_MESSAGE)),
                )
            })
            .collect();
        for (record, event) in dead.iter().zip(&events) {
            assert_eq!(
                record.value.as_deref(),
                Some(event.to_json().as_slice()),
                "{url}"
            );
        }
        let (class, message) = &reasons[0];
        assert_eq!(class, "smmctl.notifications.ProviderRefused", "{url}");
        assert!(
            message.contains("550") && message.contains("mailbox unknown"),
            "{url}: {message}"
        );
        let (class, message) = &reasons[1];
        assert_eq!(class, "smmctl.notifications.ProviderRefused", "{url}");
        assert!(
            message.contains("422") && message.contains("device token unknown"),
            "{url}: {message}"
        );
        let (class, message) = &reasons[2];
        assert_eq!(class, "smmctl.notifications.ChannelNotConfigured", "{url}");
        assert!(message.contains("sms_url"), "{url}: {message}");
    }
}
