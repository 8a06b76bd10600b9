//! Starts what a [`Plan`] selected: the metrics server, the webhook
//! gateway, each worker with its handler, and waits for them to stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use smm_workers::runtime::metrics::Metrics;
use smm_workers::runtime::{self, Handler, Shared, Worker};
use smm_workers::servers::gateway;
use smm_workers::servers::websocket::{self, Hub, StatusFanOut};
use smm_workers::store::Store;
use smm_workers::workers::binom::Binom;
use smm_workers::workers::cqrs::ReadModel;
use smm_workers::workers::notifications::Notifications;
use smm_workers::workers::offers::Offers;
use smm_workers::workers::order_state::OrderState;
use smm_workers::workers::orders::Orders;
use smm_workers::workers::payment_refunds::PaymentRefunds;
use smm_workers::workers::payments::Payments;
use smm_workers::workers::progress::Progress;
use smm_workers::workers::refunds::Refunds;
use smm_workers::workers::video::{Video, poll_progress};
use smm_workers::workers::webhooks::Webhooks;
use smm_workers::workers::youtube::YouTube;
use smm_workers::workers::{WorkerInfo, WorkerKind};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::plan::Plan;
use crate::Context;
use crate::exit::{ExitStatus, UsageError};
use crate::kafka::client_config;

type Tasks = JoinSet<Result<(), runtime::RuntimeError>>;

/// The started workers and servers, until they are told to stop.
pub struct Running {
    tasks: Tasks,
    /// Background tasks the workers rely on: delivery polling, the
    /// WebSocket server.
    pollers: Vec<JoinHandle<()>>,
    metrics_server: JoinHandle<()>,
    gateway_server: Option<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    shutdown: watch::Receiver<bool>,
    /// Where WebSocket clients connect, when that worker runs.
    pub ws_addr: Option<SocketAddr>,
}

pub async fn start(
    plan: &Plan,
    store: Option<Store>,
    ctx: &Context,
    drain_timeout: Duration,
) -> anyhow::Result<Running> {
    let client = client_config(&ctx.settings);
    let producer = runtime::producer(&client).map_err(|e| {
        UsageError::new(format!(
            "cannot create the Kafka producer: {e} (check -X and the profile's [kafka] table)"
        ))
    })?;
    let (stop, shutdown) = runtime::shutdown_on_signals();
    let metrics = Arc::new(Metrics::default());
    let metrics_server = runtime::http::serve(plan.metrics_addr, metrics.clone(), shutdown.clone())
        .await
        .map_err(|e| listen_error("metrics", plan.metrics_addr, &e, "--metrics-addr"))?;
    let gateway_server = match plan.gateway_addr {
        Some(addr) => Some(
            gateway::serve(addr, producer.clone(), shutdown.clone())
                .await
                .map_err(|e| listen_error("webhook gateway", addr, &e, "--gateway-addr"))?,
        ),
        None => None,
    };
    let shared = Shared {
        client,
        producer,
        store: store.clone(),
        metrics,
        shutdown: shutdown.clone(),
        drain_timeout,
        instance: plan.instance.clone(),
    };
    let mut running = Running {
        tasks: JoinSet::new(),
        pollers: Vec::new(),
        metrics_server,
        gateway_server,
        stop,
        shutdown,
        ws_addr: None,
    };
    for info in &plan.consumers {
        let store = store
            .clone()
            .ok_or_else(|| anyhow::anyhow!("the store is open for consumers"))?;
        running.start_worker(info, store, plan, &shared).await?;
    }
    Ok(running)
}

impl Running {
    /// Builds the worker's handler from what the plan resolved for it and
    /// spawns it on the shared runtime.
    async fn start_worker(
        &mut self,
        info: &WorkerInfo,
        store: Store,
        plan: &Plan,
        shared: &Shared,
    ) -> anyhow::Result<()> {
        let clients = &plan.clients;
        match info.kind {
            WorkerKind::Webhooks => {
                let api_key = plan.api_key.clone().unwrap_or_default();
                self.spawn(info, Webhooks { store, api_key }, shared);
            }
            WorkerKind::Payments => self.spawn(info, Payments { store }, shared),
            WorkerKind::Orders => {
                let (youtube, quota) = needs(&clients.youtube)?;
                let handler = Orders {
                    store,
                    youtube,
                    quota,
                };
                self.spawn(info, handler, shared);
            }
            WorkerKind::Youtube => {
                let (api, quota) = needs(&clients.youtube)?;
                self.spawn(info, YouTube { store, api, quota }, shared);
            }
            WorkerKind::OrderState => self.spawn(info, OrderState { store }, shared),
            WorkerKind::Progress => self.spawn(info, Progress { store }, shared),
            WorkerKind::Video => {
                let (delivery, every) = needs(&clients.delivery)?;
                self.pollers.push(tokio::spawn(poll_progress(
                    store.clone(),
                    delivery.clone(),
                    shared.producer.clone(),
                    every,
                    self.shutdown.clone(),
                )));
                self.spawn(info, Video { store, delivery }, shared);
            }
            WorkerKind::Binom => {
                let api = needs(&clients.binom)?;
                self.spawn(info, Binom { store, api }, shared);
            }
            WorkerKind::Offers => self.spawn(info, Offers { store }, shared),
            WorkerKind::Cqrs => self.spawn(info, ReadModel { store }, shared),
            WorkerKind::Notifications => {
                let senders = needs(&clients.senders)?;
                self.spawn(info, Notifications { store, senders }, shared);
            }
            WorkerKind::Websocket => self.start_websocket(info, shared, plan).await?,
            WorkerKind::Refunds => self.spawn(info, Refunds { store }, shared),
            WorkerKind::PaymentRefunds => {
                let api = plan
                    .refund_api
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("the refund API is configured above"))?;
                self.spawn(info, PaymentRefunds { store, api }, shared);
            }
            // Served by `start` before any worker: it reads no topic, so
            // it has no row in the table and never reaches here.
            WorkerKind::WebhookGateway => {}
        }
        Ok(())
    }

    /// The WebSocket worker: its hub's figures on /metrics, the server its
    /// clients connect to, and the fan-out from the status topic.
    async fn start_websocket(
        &mut self,
        info: &WorkerInfo,
        shared: &Shared,
        plan: &Plan,
    ) -> anyhow::Result<()> {
        let (addr, secret) = needs(&plan.clients.websocket)?;
        let hub = Arc::new(Hub::new());
        let watched = hub.clone();
        shared
            .metrics
            .add_families(move |out| websocket_families(&watched, out));
        let (bound, server) = websocket::serve(addr, hub.clone(), secret, self.shutdown.clone())
            .await
            .map_err(|e| listen_error("WebSocket", addr, &e, "SMM_WS_ADDR"))?;
        self.ws_addr = Some(bound);
        self.pollers.push(server);
        self.spawn(info, StatusFanOut { hub }, shared);
        Ok(())
    }

    fn spawn<H: Handler>(&mut self, info: &WorkerInfo, handler: H, shared: &Shared) {
        let worker = Worker {
            name: info.name().to_owned(),
            group: info.group.to_owned(),
            routes: info.routes(),
            handler,
        };
        self.tasks.spawn(runtime::run(worker, shared.clone()));
    }

    /// Waits until a signal or a failed worker stops everything, then for
    /// every task and server to finish.
    pub async fn supervise(mut self, ctx: &Context) -> ExitStatus {
        let mut status = ExitStatus::Success;
        if self.tasks.is_empty() {
            let mut wait = self.shutdown.clone();
            let _ = wait.wait_for(|down| *down).await;
        }
        while let Some(joined) = self.tasks.join_next().await {
            let failed = match joined {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(format!("a worker task ended abnormally: {e}")),
            };
            if let Some(why) = failed {
                ctx.printer.error(&anyhow::anyhow!(why));
                status = ExitStatus::Failure;
                // One worker down means the process is not what was asked
                // for; stop the others cleanly rather than run half a panel.
                let _ = self.stop.send(true);
            }
        }
        let _ = self.stop.send(true);
        for poller in self.pollers {
            let _ = poller.await;
        }
        if let Some(server) = self.gateway_server {
            let _ = server.await;
        }
        let _ = self.metrics_server.await;
        status
    }
}

/// The WebSocket hub's figures in Prometheus text format.
fn websocket_families(hub: &Hub, out: &mut String) {
    let stats = hub.stats();
    for (name, kind, help, value) in [
        (
            "smm_websocket_clients",
            "gauge",
            "WebSocket clients connected now.",
            stats.connected as u64,
        ),
        (
            "smm_websocket_subscriptions",
            "gauge",
            "Order subscriptions held by connected clients.",
            stats.subscriptions as u64,
        ),
        (
            "smm_websocket_updates_delivered_total",
            "counter",
            "Status updates queued to clients.",
            stats.delivered,
        ),
        (
            "smm_websocket_slow_clients_dropped_total",
            "counter",
            "Clients closed because their queue of updates filled.",
            stats.dropped_slow,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
}

/// A client `providers::build` made for the selected workers.
fn needs<T: Clone>(client: &Option<T>) -> anyhow::Result<T> {
    client
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the provider clients are built for every selected worker"))
}

/// A server that could not bind, with the setting that moves it.
fn listen_error(what: &str, addr: SocketAddr, e: &std::io::Error, setting: &str) -> anyhow::Error {
    UsageError::new(format!(
        "cannot listen on {addr} for the {what} server: {e}. Is another worker running there? \
         Pick another address with {setting}"
    ))
    .into()
}
