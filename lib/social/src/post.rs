//! A post as every backend understands it.

/// An image attached to a post.
#[derive(Clone, PartialEq, Eq)]
pub struct Media {
    /// JPEG bytes.
    pub jpeg: Vec<u8>,
    /// Alt text for screen readers.
    pub description: String,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media")
            .field("jpeg_bytes", &self.jpeg.len())
            .field("description", &self.description)
            .finish()
    }
}

/// One public alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// The text.
    pub text: String,
    /// BCP 47 language of the text, e.g. `ko`.
    pub language: String,
    /// An optional image.
    pub media: Option<Media>,
    /// Replaying a post with the same key must not create a second one.
    pub idempotency_key: String,
}

/// What the network answered for a published post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The network's id of the post.
    pub id: String,
    /// Its public URL, when the network gives one.
    pub url: Option<String>,
}

/// A snapshot ready for a public post: people pixelated when `hide_people`.
///
/// A snapshot that cannot be decoded is left out (with a warning) rather than
/// holding back the alert.
pub fn public_snapshot(
    event: &safecity_events::SafetyEvent,
    hide_people: bool,
    description: String,
) -> Option<Media> {
    let snapshot = event.snapshot.as_ref()?;
    let jpeg = if hide_people {
        match crate::privacy::hide_people(
            &snapshot.0,
            event.frame_size,
            &event.detections,
            &["person"],
        ) {
            Ok(hidden) => hidden,
            Err(error) => {
                tracing::warn!(%error, "snapshot unusable, posting without it");
                return None;
            }
        }
    } else {
        snapshot.0.clone()
    };
    Some(Media { jpeg, description })
}

/// A time as people in Korea read it, e.g. `2026-11-27 19:05 KST` for `%Y-%m-%d %H:%M`.
pub fn kst(at: chrono::DateTime<chrono::Utc>, format: &str) -> String {
    let offset = chrono::FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset");
    format!("{} KST", at.with_timezone(&offset).format(format))
}
