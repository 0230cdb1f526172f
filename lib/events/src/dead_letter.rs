//! The dead-letter header schema: the failure record a message carries
//! through retries and into a function's dead-letter queue.
//!
//! A failed attempt republishes the message to a retry queue with these headers
//! updated; the dead-letter queue receives the same headers plus the reason.

use chrono::{DateTime, SecondsFormat, Utc};
use lapin::BasicProperties;
use lapin::types::FieldTable;

use crate::headers::{get_i64, get_str, set_i64, set_str};

/// Header names of the failure record.
pub mod header {
    /// Failed attempts so far.
    pub const FAILED_ATTEMPTS: &str = "x-safecity-failed-attempts";
    /// Time of the first failure, RFC 3339.
    pub const FIRST_FAILURE_AT: &str = "x-safecity-first-failure-at";
    /// Time of the latest failure, RFC 3339.
    pub const LAST_FAILURE_AT: &str = "x-safecity-last-failure-at";
    /// Reason of the latest failure.
    pub const LAST_ERROR: &str = "x-safecity-last-error";
    /// Exchange the message was first published to.
    pub const ORIGINAL_EXCHANGE: &str = "x-safecity-original-exchange";
    /// Routing key the message was first published with.
    pub const ORIGINAL_ROUTING_KEY: &str = "x-safecity-original-routing-key";
    /// Dead-letter queue only: why the message was given up.
    pub const DEAD_LETTER_REASON: &str = "x-safecity-dead-letter-reason";
    /// Dead-letter queue only: `decode`, `rejected` or `exhausted`.
    pub const DEAD_LETTER_CAUSE: &str = "x-safecity-dead-letter-cause";
    /// Dead-letter queue only: the function that gave up.
    pub const FUNCTION: &str = "x-safecity-function";
}

/// Why an input was dead-lettered: the `x-safecity-dead-letter-cause`
/// header value and the `reason` label of the dead-letter metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterCause {
    /// The message could not be decoded.
    Decode,
    /// The handler said it can never succeed.
    Rejected,
    /// Every attempt failed.
    Exhausted,
}

impl DeadLetterCause {
    /// The metric label and dead-letter header value.
    pub fn label(self) -> &'static str {
        match self {
            DeadLetterCause::Decode => "decode",
            DeadLetterCause::Rejected => "rejected",
            DeadLetterCause::Exhausted => "exhausted",
        }
    }
}

/// What a received message says about its earlier failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRecord {
    /// Failed attempts before this delivery.
    pub failed_attempts: u32,
    /// First failure time, as carried.
    pub first_failure_at: Option<String>,
    /// Exchange the message was first published to.
    pub original_exchange: String,
    /// Routing key it was first published with.
    pub original_routing_key: String,
}

impl FailureRecord {
    /// Reads the record from a delivery's headers; a fresh message has none.
    pub fn read(headers: Option<&FieldTable>, exchange: &str, routing_key: &str) -> Self {
        FailureRecord {
            failed_attempts: get_i64(headers, header::FAILED_ATTEMPTS)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            first_failure_at: get_str(headers, header::FIRST_FAILURE_AT).map(str::to_owned),
            original_exchange: get_str(headers, header::ORIGINAL_EXCHANGE)
                .unwrap_or(exchange)
                .to_owned(),
            original_routing_key: get_str(headers, header::ORIGINAL_ROUTING_KEY)
                .unwrap_or(routing_key)
                .to_owned(),
        }
    }

    /// The number of the attempt this delivery runs, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.failed_attempts.saturating_add(1)
    }

    /// Properties for republishing after one more failure: the original
    /// properties with the failure headers updated.
    pub fn after_failure(
        &self,
        original: &BasicProperties,
        reason: &str,
        now: DateTime<Utc>,
    ) -> BasicProperties {
        self.record(original, reason, now, 1)
    }

    fn record(
        &self,
        original: &BasicProperties,
        reason: &str,
        now: DateTime<Utc>,
        new_failures: u32,
    ) -> BasicProperties {
        let mut headers = original.headers().clone().unwrap_or_default();
        let now_text = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        set_i64(
            &mut headers,
            header::FAILED_ATTEMPTS,
            i64::from(self.failed_attempts) + i64::from(new_failures),
        );
        set_str(
            &mut headers,
            header::FIRST_FAILURE_AT,
            self.first_failure_at
                .clone()
                .unwrap_or_else(|| now_text.clone()),
        );
        set_str(&mut headers, header::LAST_FAILURE_AT, now_text);
        set_str(&mut headers, header::LAST_ERROR, truncate(reason, 4096));
        self.set_origin(&mut headers);
        original.clone().with_headers(headers)
    }

    /// Records where the message was first published, so it survives the
    /// detour through the default exchange.
    fn set_origin(&self, headers: &mut FieldTable) {
        set_str(
            headers,
            header::ORIGINAL_EXCHANGE,
            self.original_exchange.clone(),
        );
        set_str(
            headers,
            header::ORIGINAL_ROUTING_KEY,
            self.original_routing_key.clone(),
        );
    }

    /// Properties for parking a deferred input: the original properties with
    /// its origin recorded and its failure count unchanged.
    pub fn deferred(&self, original: &BasicProperties) -> BasicProperties {
        let mut headers = original.headers().clone().unwrap_or_default();
        self.set_origin(&mut headers);
        original.clone().with_headers(headers)
    }

    /// Properties for the dead-letter queue: the failure headers plus reason,
    /// cause and function. A decode failure is not an attempt and is not counted.
    pub fn dead_letter(
        &self,
        original: &BasicProperties,
        function: &str,
        cause: DeadLetterCause,
        reason: &str,
        now: DateTime<Utc>,
    ) -> BasicProperties {
        let new_failures = u32::from(cause != DeadLetterCause::Decode);
        let properties = self.record(original, reason, now, new_failures);
        let mut headers = properties.headers().clone().unwrap_or_default();
        set_str(
            &mut headers,
            header::DEAD_LETTER_REASON,
            truncate(reason, 4096),
        );
        set_str(&mut headers, header::DEAD_LETTER_CAUSE, cause.label());
        set_str(&mut headers, header::FUNCTION, function);
        properties.with_headers(headers)
    }
}

/// `text` on one line: each line break (with the blanks around it) becomes
/// `"; "`, so a reason never breaks a log line or a header.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text
        .trim()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if index > 0 {
            out.push_str("; ");
        }
        out.push_str(line);
    }
    out
}

fn truncate(text: &str, max: usize) -> String {
    let text = one_line(text);
    let text = text.as_str();
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("time")
    }

    #[test]
    fn a_fresh_message_has_no_failures() {
        let record = FailureRecord::read(None, "safecity.events", "fire");
        assert_eq!(record.attempt(), 1);
        assert_eq!(record.original_routing_key, "fire");
    }

    #[test]
    fn failures_accumulate_and_keep_the_first_time_and_origin() {
        let fresh = FailureRecord::read(None, "safecity.events", "fire");
        let once = fresh.after_failure(
            &BasicProperties::default(),
            "timeout",
            at("2026-11-27T10:00:00Z"),
        );
        // The retried message comes back through the default exchange under another key.
        let record = FailureRecord::read(once.headers().as_ref(), "", "safecity.fn.x");
        assert_eq!(record.failed_attempts, 1);
        assert_eq!(record.attempt(), 2);
        assert_eq!(record.original_exchange, "safecity.events");
        assert_eq!(record.original_routing_key, "fire");
        let twice = record.after_failure(&once, "503", at("2026-11-27T10:00:05Z"));
        let headers = twice.headers().as_ref();
        assert_eq!(get_i64(headers, header::FAILED_ATTEMPTS), Some(2));
        assert_eq!(
            get_str(headers, header::FIRST_FAILURE_AT),
            Some("2026-11-27T10:00:00.000Z")
        );
        assert_eq!(
            get_str(headers, header::LAST_FAILURE_AT),
            Some("2026-11-27T10:00:05.000Z")
        );
        assert_eq!(get_str(headers, header::LAST_ERROR), Some("503"));
    }

    #[test]
    fn dead_letter_headers_say_why() {
        let record = FailureRecord::read(None, "safecity.events", "fire");
        let properties = record.dead_letter(
            &BasicProperties::default().with_message_id("m1".into()),
            "fire-post",
            DeadLetterCause::Rejected,
            "401 bad token",
            at("2026-11-27T10:00:00Z"),
        );
        let headers = properties.headers().as_ref();
        assert_eq!(
            get_str(headers, header::DEAD_LETTER_REASON),
            Some("401 bad token")
        );
        assert_eq!(
            get_str(headers, header::DEAD_LETTER_CAUSE),
            Some("rejected")
        );
        assert_eq!(get_str(headers, header::FUNCTION), Some("fire-post"));
        assert_eq!(get_i64(headers, header::FAILED_ATTEMPTS), Some(1));
        assert_eq!(
            properties.message_id().as_ref().map(|m| m.as_str()),
            Some("m1")
        );

        let decode = record.dead_letter(
            &BasicProperties::default(),
            "fire-post",
            DeadLetterCause::Decode,
            "bad json",
            at("2026-11-27T10:00:00Z"),
        );
        assert_eq!(
            get_i64(decode.headers().as_ref(), header::FAILED_ATTEMPTS),
            Some(0)
        );
    }

    #[test]
    fn reasons_are_one_line() {
        assert_eq!(
            one_line("cannot decode the Jpeg image:\n  premature end of buffer\n"),
            "cannot decode the Jpeg image:; premature end of buffer"
        );
        let record = FailureRecord::read(None, "safecity.frames", "seoul");
        let properties = record.dead_letter(
            &BasicProperties::default(),
            "detector",
            DeadLetterCause::Rejected,
            "corrupt\r\nframe\n",
            at("2026-11-27T10:00:00Z"),
        );
        assert_eq!(
            get_str(properties.headers().as_ref(), header::DEAD_LETTER_REASON),
            Some("corrupt; frame")
        );
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let long = "가".repeat(3000);
        let cut = truncate(&long, 4096);
        assert!(cut.len() <= 4096 + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }
}
