//! Messages that drive delivery: video processing, YouTube checks, Binom
//! campaigns and offer assignment.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ValidationError;
use super::validate::{http_url, id, non_empty, non_negative, positive, youtube_video_id};

/// Work for the video pipeline once an order is paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoProcessingMessage {
    pub order_id: i64,
    pub youtube_video_id: String,
    pub video_url: String,
    pub target_views: i64,
    /// The view count when the order started, so delivery is measured from
    /// it; `None` until the YouTube check has run.
    pub start_count: Option<i64>,
    /// Restricts traffic to part of the video; `None` means the whole video.
    pub clip: Option<VideoClip>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoClip {
    pub start_seconds: u32,
    pub duration_seconds: u32,
}

impl VideoProcessingMessage {
    pub fn validate(&self) -> Result<(), ValidationError> {
        id("order_id", self.order_id)?;
        youtube_video_id("youtube_video_id", &self.youtube_video_id)?;
        http_url("video_url", &self.video_url)?;
        positive("target_views", self.target_views)?;
        if let Some(start_count) = self.start_count {
            non_negative("start_count", start_count)?;
        }
        if self.clip.is_some_and(|clip| clip.duration_seconds == 0) {
            return Err(ValidationError::new(
                "clip.duration_seconds",
                "must be greater than zero (got 0)",
            ));
        }
        Ok(())
    }
}

/// A call the YouTube worker should make for an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct YouTubeTask {
    pub order_id: i64,
    pub youtube_video_id: String,
    pub operation: YouTubeOperation,
}

/// Tagged by `kind` so new operations can be added without breaking the
/// shape of the existing ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum YouTubeOperation {
    /// Check that the video exists and is public before taking money.
    VerifyVideo,
    /// Read the current view count (start count or delivery check).
    VerifyViewCount,
    ChannelOperation {
        channel_id: String,
        action: String,
    },
}

impl YouTubeTask {
    pub fn validate(&self) -> Result<(), ValidationError> {
        id("order_id", self.order_id)?;
        youtube_video_id("youtube_video_id", &self.youtube_video_id)?;
        match &self.operation {
            YouTubeOperation::VerifyVideo | YouTubeOperation::VerifyViewCount => Ok(()),
            YouTubeOperation::ChannelOperation { channel_id, action } => {
                non_empty("operation.channel_id", channel_id)?;
                non_empty("operation.action", action)
            }
        }
    }
}

/// Ask the Binom worker to create a traffic campaign for an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinomCampaignCreation {
    pub order_id: i64,
    pub campaign_name: String,
    pub traffic_source_id: i64,
    pub offers: Vec<WeightedOffer>,
}

/// Binom splits traffic across offers proportionally to `weight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightedOffer {
    pub offer_id: i64,
    pub weight: u32,
}

impl BinomCampaignCreation {
    pub fn validate(&self) -> Result<(), ValidationError> {
        id("order_id", self.order_id)?;
        non_empty("campaign_name", &self.campaign_name)?;
        id("traffic_source_id", self.traffic_source_id)?;
        if self.offers.is_empty() {
            return Err(ValidationError::new(
                "offers",
                "must contain at least one offer; a campaign without offers sends traffic nowhere",
            ));
        }
        for (index, offer) in self.offers.iter().enumerate() {
            id(&format!("offers[{index}].offer_id"), offer.offer_id)?;
        }
        // Summed in u64 so many large weights cannot overflow.
        let total: u64 = self.offers.iter().map(|o| u64::from(o.weight)).sum();
        if total == 0 {
            return Err(ValidationError::new(
                "offers",
                "weights must add up to more than zero; with all weights at 0 Binom routes no traffic",
            ));
        }
        Ok(())
    }
}

/// Command: attach an offer to an order (optionally inside a campaign).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferAssignment {
    pub order_id: i64,
    pub offer_id: i64,
    pub campaign_id: Option<i64>,
}

impl OfferAssignment {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_assignment(self.order_id, self.offer_id, self.campaign_id)
    }
}

/// Fact: an assignment changed. Kept apart from [`OfferAssignment`] so the
/// audit trail is never mistaken for a command and re-executed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferAssignmentEvent {
    pub order_id: i64,
    pub offer_id: i64,
    pub campaign_id: Option<i64>,
    pub action: OfferAssignmentAction,
    pub at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferAssignmentAction {
    Assigned,
    Reassigned,
    Unassigned,
}

impl OfferAssignmentEvent {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_assignment(self.order_id, self.offer_id, self.campaign_id)
    }
}

fn validate_assignment(
    order_id: i64,
    offer_id: i64,
    campaign_id: Option<i64>,
) -> Result<(), ValidationError> {
    id("order_id", order_id)?;
    id("offer_id", offer_id)?;
    match campaign_id {
        Some(campaign_id) => id("campaign_id", campaign_id),
        None => Ok(()),
    }
}
