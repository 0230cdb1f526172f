//! `safecity dead-letters` and `safecity replay`: what a function gave up on,
//! and sending it back.

use std::collections::BTreeMap;

use anyhow::Context as _;
use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::ShortString;
use safecity_events::dead_letter::header;
use safecity_events::headers::{get_i64, get_str};
use safecity_events::{FunctionQueues, Publisher};

/// Takes the next message of `queue` (unacked: it returns to the queue
/// unless acked, at the latest when the channel closes).
async fn next(publisher: &Publisher, queue: &str) -> anyhow::Result<Option<BasicGetMessage>> {
    publisher
        .channel()
        .basic_get(ShortString::from(queue), BasicGetOptions::default())
        .await
        .with_context(|| format!("reading `{queue}`"))
}

/// Prints up to `limit` dead letters of `function` with their reasons;
/// removes them when `remove`.
pub async fn show(
    publisher: &Publisher,
    function: &str,
    limit: usize,
    remove: bool,
) -> anyhow::Result<()> {
    let queue = FunctionQueues::new(function)?.dead_letter();
    let mut shown = 0;
    while shown < limit {
        let Some(message) = next(publisher, &queue).await? else {
            break;
        };
        shown += 1;
        println!("#{shown} {}", describe(&message));
        if remove {
            message
                .delivery
                .acker
                .ack(BasicAckOptions::default())
                .await?;
        }
    }
    if shown == 0 {
        println!("`{queue}` is empty");
    }
    Ok(())
}

/// One dead letter as the operator reads it.
fn describe(message: &BasicGetMessage) -> String {
    let headers = message.delivery.properties.headers().as_ref();
    format!(
        "cause={} attempts={} first_failure={} last_failure={}\n   reason: {}\n   routing key: {}\n   body: {}",
        get_str(headers, header::DEAD_LETTER_CAUSE).unwrap_or("broker"),
        get_i64(headers, header::FAILED_ATTEMPTS).unwrap_or(0),
        get_str(headers, header::FIRST_FAILURE_AT).unwrap_or("-"),
        get_str(headers, header::LAST_FAILURE_AT).unwrap_or("-"),
        get_str(headers, header::DEAD_LETTER_REASON)
            .unwrap_or("dead-lettered by the broker (delivery limit)"),
        get_str(headers, header::ORIGINAL_ROUTING_KEY)
            .unwrap_or(message.delivery.routing_key.as_str()),
        preview(&message.delivery.data),
    )
}

/// Moves every dead letter of `function` back to its work queue, with the
/// failure record reset (origin kept).
pub async fn replay(publisher: &Publisher, function: &str) -> anyhow::Result<()> {
    let queues = FunctionQueues::new(function)?;
    let mut moved = 0u64;
    while let Some(message) = next(publisher, &queues.dead_letter()).await? {
        let mut properties = message.delivery.properties.clone();
        if let Some(headers) = properties.headers().clone() {
            let kept: BTreeMap<_, _> = headers
                .inner()
                .iter()
                .filter(|(k, _)| {
                    let name = k.as_str();
                    name == header::ORIGINAL_EXCHANGE
                        || name == header::ORIGINAL_ROUTING_KEY
                        || !name.starts_with("x-")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            properties = properties.with_headers(kept.into());
        }
        publisher
            .publish("", &queues.work(), &message.delivery.data, properties)
            .await?;
        message
            .delivery
            .acker
            .ack(BasicAckOptions::default())
            .await?;
        moved += 1;
    }
    println!(
        "replayed {moved} dead letter(s) of `{function}` into `{}`",
        queues.work()
    );
    Ok(())
}

fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut shown: String = text.chars().take(160).collect();
    if text.chars().count() > 160 {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_short() {
        assert_eq!(preview(b"abc"), "abc");
        assert_eq!(preview(&[b'x'; 500]).chars().count(), 161);
    }
}
