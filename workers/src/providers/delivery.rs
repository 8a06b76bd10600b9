//! The view delivery provider: starts delivery for an order and reports
//! how much has been delivered.
//!
//! `POST {base}/v1/deliveries` starts one, with the order as the
//! idempotency key, so a start retried after a timeout finds the delivery
//! the first attempt made instead of buying the views twice.
//! `GET {base}/v1/deliveries/{id}` reports its progress.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{CallError, base, call, client, unreadable};
use crate::contract::events::VideoClip;

const SERVICE: &str = "the delivery provider";

#[derive(Debug, Clone)]
pub struct DeliveryApi {
    base_url: String,
    api_key: Option<String>,
    http: reqwest::Client,
}

#[derive(Debug, Clone, Serialize)]
pub struct StartDelivery<'a> {
    pub order_id: i64,
    pub youtube_video_id: &'a str,
    pub video_url: &'a str,
    pub quantity: i64,
    pub start_count: Option<i64>,
    pub clip: Option<VideoClip>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct DeliveryState {
    pub delivery_id: String,
    /// `running`, `completed`, or whatever else the provider says.
    pub status: String,
    pub delivered: i64,
    pub quantity: i64,
}

impl DeliveryApi {
    pub fn new(
        base_url: &str,
        api_key: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        Ok(DeliveryApi {
            base_url: base(base_url),
            api_key: api_key.map(str::to_owned),
            http: client(timeout)?,
        })
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    pub async fn start(&self, order: &StartDelivery<'_>) -> Result<DeliveryState, CallError> {
        let request = self
            .http
            .post(format!("{}/v1/deliveries", self.base_url))
            .header("idempotency-key", format!("order-{}", order.order_id))
            .json(order);
        let (_, body) = call(SERVICE, self.authorized(request)).await?;
        serde_json::from_str(&body).map_err(|e| unreadable(SERVICE, "start answer", e))
    }

    pub async fn state(&self, delivery_id: &str) -> Result<DeliveryState, CallError> {
        let request = self
            .http
            .get(format!("{}/v1/deliveries/{delivery_id}", self.base_url));
        let (_, body) = call(SERVICE, self.authorized(request)).await?;
        serde_json::from_str(&body).map_err(|e| unreadable(SERVICE, "delivery state", e))
    }
}
