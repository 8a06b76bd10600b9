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

fn readiness(metrics: &Metrics) -> (bool, serde_json::Value) {
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
            })
        })
        .collect::<Vec<_>>();
    (
        ready,
        serde_json::json!({ "live": true, "ready": ready, "workers": detail }),
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
    let (ready, body) = readiness(&metrics);
    (status(ready), axum::Json(body))
}

async fn ready(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    let (ready, _) = readiness(&metrics);
    (status(ready), if ready { "ready\n" } else { "not ready\n" })
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
