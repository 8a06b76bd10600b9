//! `youtube` (YouTube-specific processing): video and view count checks
//! and channel lookups, all drawn from the project's daily unit budget.
//! When the budget is spent the partition waits until the quota resets and
//! then goes on: a record is never dropped or dead-lettered for quota.

use crate::contract::events::YouTubeOperation;
use crate::providers::youtube::{LIST_COST, LookupError, Quota, Spend, YouTubeApi};
use crate::runtime::{Delivery, Handled, Handler, HandlerFailure};
use crate::store::Store;
use crate::store::panel;

use super::orders::{check_video, quota_failure};
use super::{already_applied, event_of};

pub struct YouTube {
    pub store: Store,
    pub api: YouTubeApi,
    pub quota: Quota,
}

impl Handler for YouTube {
    async fn handle<'a>(&'a self, delivery: &'a Delivery<'a>) -> Result<Handled, HandlerFailure> {
        let envelope = delivery.envelope()?;
        let task = event_of!(envelope, YouTubeTask)?;
        if already_applied(&self.store, delivery, envelope.event_id).await? {
            return Ok(Handled::Duplicate(envelope.event_id));
        }
        let subject = format!("order:{}", task.order_id);
        match &task.operation {
            YouTubeOperation::VerifyVideo | YouTubeOperation::VerifyViewCount => {
                let video =
                    check_video(&self.store, &self.api, &self.quota, &task.youtube_video_id)
                        .await?;
                let Some(mut unit) = self.store.begin(delivery.claim(envelope.event_id)).await?
                else {
                    return Ok(Handled::Duplicate(envelope.event_id));
                };
                let known = if matches!(task.operation, YouTubeOperation::VerifyVideo) {
                    panel::record_verification(
                        &mut unit,
                        task.order_id,
                        video.view_count,
                        &video.title,
                    )
                    .await?
                } else {
                    panel::record_view_count(&mut unit, task.order_id, video.view_count).await?
                };
                unit.audit(
                    "youtube.view_count",
                    &subject,
                    &format!(
                        "video {} has {} views{}",
                        video.id,
                        video
                            .view_count
                            .map_or_else(|| "hidden".to_owned(), |v| v.to_string()),
                        if known {
                            ""
                        } else {
                            " (order not in the store)"
                        }
                    ),
                )
                .await?;
                unit.commit().await?;
            }
            YouTubeOperation::ChannelOperation { channel_id, action } => {
                if let Spend::Exhausted { resets_at } =
                    self.quota.spend(&self.store, LIST_COST).await?
                {
                    return Err(quota_failure(resets_at, "the daily unit budget is spent"));
                }
                match self.api.channel_exists(channel_id).await {
                    Ok(true) => {}
                    Ok(false) => {
                        return Err(HandlerFailure::poison(
                            "smmctl.youtube.ChannelUnavailable",
                            format!("channel {channel_id} is unknown to YouTube"),
                        ));
                    }
                    Err(LookupError::QuotaExceeded) => {
                        let resets_at = self.quota.exhaust(&self.store).await?;
                        return Err(quota_failure(resets_at, "YouTube answered quotaExceeded"));
                    }
                    Err(LookupError::NotFound(_)) => {
                        return Err(HandlerFailure::poison(
                            "smmctl.youtube.ChannelUnavailable",
                            format!("channel {channel_id} is unknown to YouTube"),
                        ));
                    }
                    Err(LookupError::Call(e)) => return Err(e.into_failure("smmctl.youtube")),
                }
                let Some(mut unit) = self.store.begin(delivery.claim(envelope.event_id)).await?
                else {
                    return Ok(Handled::Duplicate(envelope.event_id));
                };
                unit.audit(
                    "youtube.channel",
                    &subject,
                    &format!("channel {channel_id} checked for {action}"),
                )
                .await?;
                unit.commit().await?;
            }
        }
        Ok(Handled::Applied(envelope.event_id))
    }
}
