//! Local stand-ins for the panel's outside services, for `smmctl sandbox`,
//! `smmctl simulate` and the tests: YouTube's Data API (videos and
//! channels), the view delivery provider, the Binom tracker, and SMS and
//! push endpoints. They speak the same HTTP the workers' clients speak to
//! the real services, and record every call so a test can count them.
//!
//! Video ids steer the YouTube stand-in, so a scenario needs no setup:
//! ids starting with `x` are unknown (no item), `flaky` fails its first
//! call with 503, `hidden` hides its view count. Campaign names containing
//! `slow` make Binom answer the first creation after the client's timeout,
//! having created the campaign all the same, as a real timeout can.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

/// How the stand-ins behave.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The YouTube key the stand-in accepts.
    pub youtube_api_key: String,
    /// How many units YouTube grants a day before it answers quotaExceeded;
    /// `None` for no limit here (the worker's own budget still applies).
    pub youtube_quota: Option<u64>,
    /// How long a delivery takes from start to its full quantity.
    pub delivery_duration: Duration,
    /// The Binom key the stand-in accepts.
    pub binom_api_key: String,
    /// How long a `slow` campaign creation takes.
    pub binom_slow: Duration,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            youtube_api_key: "sandbox-youtube-key".into(),
            youtube_quota: None,
            delivery_duration: Duration::from_secs(6),
            binom_api_key: "sandbox-binom-key".into(),
            binom_slow: Duration::from_secs(4),
        }
    }
}

/// One call a stand-in answered.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub service: &'static str,
    pub what: String,
    pub status: u16,
    /// Wall-clock time, so calls can be placed in quota windows.
    pub at_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SandboxDelivery {
    pub delivery_id: String,
    pub order_id: i64,
    pub quantity: i64,
    pub video_url: String,
    #[serde(skip)]
    started: Option<Instant>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SandboxCampaign {
    pub id: i64,
    pub name: String,
    #[serde(rename = "trafficSourceId")]
    pub traffic_source_id: i64,
    pub offers: Vec<Value>,
}

#[derive(Default)]
struct World {
    calls: Vec<Call>,
    youtube_units: u64,
    failed_once: Vec<String>,
    deliveries: BTreeMap<String, SandboxDelivery>,
    campaigns: Vec<SandboxCampaign>,
    messages: Vec<Value>,
}

#[derive(Clone)]
struct Sandbox {
    options: Arc<SandboxOptions>,
    world: Arc<Mutex<World>>,
}

impl Sandbox {
    fn world(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves plain data; keep serving.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, service: &'static str, what: String, status: StatusCode) {
        self.world().calls.push(Call {
            service,
            what,
            status: status.as_u16(),
            at_ms: jiff::Timestamp::now().as_millisecond(),
        });
    }
}

/// A running sandbox, for tests: its address and what it has seen.
#[derive(Clone)]
pub struct SandboxHandle {
    pub addr: SocketAddr,
    sandbox: Sandbox,
}

impl SandboxHandle {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self, service: &str) -> Vec<Call> {
        self.sandbox
            .world()
            .calls
            .iter()
            .filter(|c| c.service == service)
            .cloned()
            .collect()
    }

    pub fn campaigns(&self) -> Vec<SandboxCampaign> {
        self.sandbox.world().campaigns.clone()
    }

    pub fn deliveries(&self) -> Vec<SandboxDelivery> {
        self.sandbox.world().deliveries.values().cloned().collect()
    }

    /// SMS and push messages received, in order.
    pub fn messages(&self) -> Vec<Value> {
        self.sandbox.world().messages.clone()
    }
}

fn youtube_error(status: StatusCode, reason: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "error": {
                "code": status.as_u16(),
                "message": message,
                "errors": [{ "reason": reason, "domain": "youtube.quota", "message": message }],
            }
        })),
    )
        .into_response()
}

/// A stable view count per video, so a test can predict it.
pub fn sandbox_view_count(video_id: &str) -> i64 {
    let sum: i64 = video_id.bytes().map(i64::from).sum();
    1_000 + sum * 37
}

async fn youtube_list(
    State(sandbox): State<Sandbox>,
    Path(resource): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let id = query.get("id").cloned().unwrap_or_default();
    let what = format!("{resource}.list {id}");
    if query.get("key") != Some(&sandbox.options.youtube_api_key) {
        sandbox.record("youtube", what, StatusCode::BAD_REQUEST);
        return youtube_error(
            StatusCode::BAD_REQUEST,
            "keyInvalid",
            "API key not valid. Please pass a valid API key.",
        );
    }
    {
        let mut world = sandbox.world();
        if sandbox
            .options
            .youtube_quota
            .is_some_and(|q| world.youtube_units >= q)
        {
            drop(world);
            sandbox.record("youtube", what, StatusCode::FORBIDDEN);
            return youtube_error(
                StatusCode::FORBIDDEN,
                "quotaExceeded",
                "The request cannot be completed because you have exceeded your quota.",
            );
        }
        world.youtube_units += 1;
        if id.starts_with("flaky") && !world.failed_once.contains(&id) {
            world.failed_once.push(id.clone());
            drop(world);
            sandbox.record("youtube", what, StatusCode::SERVICE_UNAVAILABLE);
            return youtube_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "backendError",
                "Backend Error",
            );
        }
    }
    sandbox.record("youtube", what, StatusCode::OK);
    let items = if id.is_empty() || id.starts_with('x') {
        vec![]
    } else if resource == "channels" {
        vec![
            json!({ "kind": "youtube#channel", "id": id, "snippet": { "title": format!("Channel {id}") } }),
        ]
    } else {
        let mut statistics = json!({ "likeCount": "12" });
        if !id.starts_with("hidden") {
            statistics["viewCount"] = json!(sandbox_view_count(&id).to_string());
        }
        vec![json!({
            "kind": "youtube#video",
            "id": id,
            "snippet": { "title": format!("Sandbox video {id}"), "channelId": "UCsandbox" },
            "statistics": statistics,
        })]
    };
    axum::Json(json!({
        "kind": format!("youtube#{}ListResponse", resource.trim_end_matches('s')),
        "items": items,
        "pageInfo": { "totalResults": items.len(), "resultsPerPage": 5 },
    }))
    .into_response()
}

#[derive(Deserialize)]
struct StartRequest {
    order_id: i64,
    quantity: i64,
    video_url: String,
}

fn delivered(options: &SandboxOptions, delivery: &SandboxDelivery) -> i64 {
    let elapsed = delivery.started.map_or(Duration::ZERO, |s| s.elapsed());
    let total = options.delivery_duration.as_secs_f64().max(0.001);
    let share = (elapsed.as_secs_f64() / total).min(1.0);
    (delivery.quantity as f64 * share).floor() as i64
}

fn delivery_json(options: &SandboxOptions, delivery: &SandboxDelivery) -> Value {
    let done = delivered(options, delivery);
    json!({
        "delivery_id": delivery.delivery_id,
        "status": if done >= delivery.quantity { "completed" } else { "running" },
        "delivered": done,
        "quantity": delivery.quantity,
    })
}

async fn delivery_start(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    axum::Json(request): axum::Json<StartRequest>,
) -> Response {
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        sandbox.record(
            "delivery",
            format!("start {}", request.order_id),
            StatusCode::BAD_REQUEST,
        );
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "Idempotency-Key header required" })),
        )
            .into_response();
    };
    let body = {
        let mut world = sandbox.world();
        let delivery = world
            .deliveries
            .entry(key.clone())
            .or_insert_with(|| SandboxDelivery {
                delivery_id: format!("dlv-{}", request.order_id),
                order_id: request.order_id,
                quantity: request.quantity,
                video_url: request.video_url.clone(),
                started: Some(Instant::now()),
            })
            .clone();
        delivery_json(&sandbox.options, &delivery)
    };
    sandbox.record(
        "delivery",
        format!("start {}", request.order_id),
        StatusCode::CREATED,
    );
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

async fn delivery_state(State(sandbox): State<Sandbox>, Path(id): Path<String>) -> Response {
    let found = sandbox
        .world()
        .deliveries
        .values()
        .find(|d| d.delivery_id == id)
        .cloned();
    match found {
        Some(delivery) => {
            sandbox.record("delivery", format!("state {id}"), StatusCode::OK);
            axum::Json(delivery_json(&sandbox.options, &delivery)).into_response()
        }
        None => {
            sandbox.record("delivery", format!("state {id}"), StatusCode::NOT_FOUND);
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({ "error": format!("no delivery {id}") })),
            )
                .into_response()
        }
    }
}

fn binom_key_ok(sandbox: &Sandbox, headers: &HeaderMap) -> bool {
    headers.get("api-key").and_then(|v| v.to_str().ok()) == Some(&sandbox.options.binom_api_key)
}

async fn binom_list(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let name = query.get("name").cloned().unwrap_or_default();
    if !binom_key_ok(&sandbox, &headers) {
        sandbox.record("binom", format!("list {name}"), StatusCode::UNAUTHORIZED);
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": "invalid api-key" })),
        )
            .into_response();
    }
    let found: Vec<SandboxCampaign> = sandbox
        .world()
        .campaigns
        .iter()
        .filter(|c| name.is_empty() || c.name == name)
        .cloned()
        .collect();
    sandbox.record("binom", format!("list {name}"), StatusCode::OK);
    axum::Json(found).into_response()
}

#[derive(Deserialize)]
struct CampaignRequest {
    name: String,
    #[serde(rename = "trafficSourceId")]
    traffic_source_id: i64,
    offers: Vec<Value>,
}

async fn binom_create(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    axum::Json(request): axum::Json<CampaignRequest>,
) -> Response {
    if !binom_key_ok(&sandbox, &headers) {
        sandbox.record(
            "binom",
            format!("create {}", request.name),
            StatusCode::UNAUTHORIZED,
        );
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": "invalid api-key" })),
        )
            .into_response();
    }
    // Like Binom itself, nothing stops a second campaign of the same name.
    let (campaign, first_of_its_name) = {
        let mut world = sandbox.world();
        let first = !world.campaigns.iter().any(|c| c.name == request.name);
        let campaign = SandboxCampaign {
            id: 1000 + world.campaigns.len() as i64 + 1,
            name: request.name.clone(),
            traffic_source_id: request.traffic_source_id,
            offers: request.offers,
        };
        world.campaigns.push(campaign.clone());
        (campaign, first)
    };
    // Recorded before the delay: the campaign exists from this moment,
    // however late the answer.
    sandbox.record(
        "binom",
        format!("create {}", request.name),
        StatusCode::CREATED,
    );
    if first_of_its_name && request.name.contains("slow") {
        tokio::time::sleep(sandbox.options.binom_slow).await;
    }
    (StatusCode::CREATED, axum::Json(campaign)).into_response()
}

async fn message(
    State(sandbox): State<Sandbox>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    axum::Json(mut body): axum::Json<Value>,
) -> Response {
    if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        body["idempotency_key"] = json!(key);
    }
    body["channel"] = json!(channel);
    sandbox.world().messages.push(body);
    sandbox.record("notify", channel, StatusCode::ACCEPTED);
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "accepted": true })),
    )
        .into_response()
}

async fn overview(State(sandbox): State<Sandbox>) -> Response {
    let world = sandbox.world();
    let deliveries: Vec<Value> = world
        .deliveries
        .values()
        .map(|d| delivery_json(&sandbox.options, d))
        .collect();
    axum::Json(json!({
        "calls": world.calls,
        "youtube_units": world.youtube_units,
        "deliveries": deliveries,
        "campaigns": world.campaigns,
        "messages": world.messages,
    }))
    .into_response()
}

/// Serves every stand-in on `addr` until `shutdown`.
pub async fn start(
    addr: SocketAddr,
    options: SandboxOptions,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SandboxHandle, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let sandbox = Sandbox {
        options: Arc::new(options),
        world: Arc::new(Mutex::new(World::default())),
    };
    let app = Router::new()
        .route("/youtube/v3/{resource}", get(youtube_list))
        .route("/v1/deliveries", post(delivery_start))
        .route("/v1/deliveries/{id}", get(delivery_state))
        .route("/public/api/v1/campaigns", get(binom_list))
        .route("/public/api/v1/campaign", post(binom_create))
        .route("/notify/{channel}", post(message))
        .route("/sandbox", get(overview))
        .with_state(sandbox.clone());
    let task = tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|down| *down).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "the sandbox stopped");
        }
    });
    Ok((SandboxHandle { addr, sandbox }, task))
}
