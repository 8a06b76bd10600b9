//! `/metrics` and `/health` for the workers of one process.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use super::metrics::Metrics;

fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/health", get(health))
        .route("/health/live", get(|| async { "live\n" }))
        .route("/health/ready", get(ready))
        .with_state(metrics)
}

async fn render_metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
}

/// Whether every worker is ready, the JSON of `/health`, and why not in
/// words, worker by worker, for `/health/ready`.
fn readiness(metrics: &Metrics) -> (bool, serde_json::Value, String) {
    let workers = metrics.readiness();
    let ready = !workers.is_empty() && workers.iter().all(|w| w.ready());
    let detail = workers
        .iter()
        .map(|w| {
            serde_json::json!({
                "worker": w.worker,
                "ready": w.ready(),
                "assigned_partitions": w.assigned_partitions,
                "broker_up": w.broker_up,
                "not_ready_because": w.not_ready_because(),
            })
        })
        .collect::<Vec<_>>();
    let reasons: Vec<String> = workers
        .iter()
        .filter_map(|w| w.not_ready_because())
        .collect();
    let text = match (ready, workers.is_empty()) {
        (true, _) => "ready\n".to_string(),
        (false, true) => "not ready: no worker has started\n".to_string(),
        (false, false) => format!("not ready: {}\n", reasons.join("; ")),
    };
    (
        ready,
        serde_json::json!({ "live": true, "ready": ready, "workers": detail }),
        text,
    )
}

fn status(ready: bool) -> StatusCode {
    if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Liveness and readiness together, as JSON. 503 until every worker has
/// partitions and a broker.
async fn health(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    let (ready, body, _) = readiness(&metrics);
    (status(ready), axum::Json(body))
}

async fn ready(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    let (ready, _, text) = readiness(&metrics);
    (status(ready), text)
}

/// Binds first, so a taken port is an error at start, not a log line later.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = router(metrics);
    Ok(tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|down| *down).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "the metrics server stopped");
        }
    }))
}
