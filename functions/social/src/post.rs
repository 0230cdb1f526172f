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
