//! The Binom tracker's campaign API.
//!
//! Creating a campaign is not idempotent on Binom's side, so the worker
//! looks a campaign up by its name before creating it: a creation that
//! timed out but happened is found on the retry instead of made twice.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{CallError, base, call, client, unreadable};
use crate::contract::events::WeightedOffer;

const SERVICE: &str = "the Binom tracker";

#[derive(Debug, Clone)]
pub struct BinomApi {
    base_url: String,
    api_key: String,
    http: reqwest::Client,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewCampaign<'a> {
    pub name: &'a str,
    #[serde(rename = "trafficSourceId")]
    pub traffic_source_id: i64,
    /// Offer assignment and traffic distribution in one: Binom splits the
    /// campaign's traffic across its offers by weight.
    pub offers: Vec<CampaignOffer>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct CampaignOffer {
    #[serde(rename = "offerId")]
    pub offer_id: i64,
    pub weight: u32,
}

impl From<&WeightedOffer> for CampaignOffer {
    fn from(offer: &WeightedOffer) -> Self {
        CampaignOffer {
            offer_id: offer.offer_id,
            weight: offer.weight,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Campaign {
    pub id: i64,
    pub name: String,
}

impl BinomApi {
    pub fn new(base_url: &str, api_key: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(BinomApi {
            base_url: base(base_url),
            api_key: api_key.to_owned(),
            http: client(timeout)?,
        })
    }

    /// The campaign called exactly `name`, if one exists.
    pub async fn find(&self, name: &str) -> Result<Option<Campaign>, CallError> {
        let request = self
            .http
            .get(format!("{}/public/api/v1/campaigns", self.base_url))
            .header("api-key", &self.api_key)
            .query(&[("name", name)]);
        let (_, body) = call(SERVICE, request).await?;
        let found: Vec<Campaign> =
            serde_json::from_str(&body).map_err(|e| unreadable(SERVICE, "campaign list", e))?;
        Ok(found.into_iter().find(|c| c.name == name))
    }

    pub async fn create(&self, campaign: &NewCampaign<'_>) -> Result<Campaign, CallError> {
        let request = self
            .http
            .post(format!("{}/public/api/v1/campaign", self.base_url))
            .header("api-key", &self.api_key)
            .json(campaign);
        let (_, body) = call(SERVICE, request).await?;
        serde_json::from_str(&body).map_err(|e| unreadable(SERVICE, "created campaign", e))
    }
}
