//! [`CfgError`]: every way a cfg can fail to parse or validate, each naming
//! the section and line at fault.

/// A parse or validation failure, naming the section and line at fault.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CfgError {
    /// The cfg contains no sections at all.
    #[error("the cfg is empty: expected a [net] section followed by layers")]
    Empty,
    /// The first section is not `[net]`/`[network]`.
    #[error("[{section}] at line {line}: the first section must be [net]")]
    MissingNet {
        /// The name of the first section.
        section: String,
        /// Its line (1-based).
        line: usize,
    },
    /// `[net]` is not followed by any layer.
    #[error("[net] at line {line} is not followed by any layer section")]
    NoLayers {
        /// The line of `[net]`.
        line: usize,
    },
    /// A line that is neither a comment, a `[section]` header nor `key=value`.
    #[error("line {line}: expected `[section]` or `key=value`, found `{text}`")]
    Syntax {
        /// The offending line (1-based).
        line: usize,
        /// Its text, trimmed.
        text: String,
    },
    /// A section this implementation does not know (e.g. `[crop]`).
    #[error("[{section}] at line {line}: unsupported section")]
    UnknownSection {
        /// The section name, without brackets.
        section: String,
        /// Its line (1-based).
        line: usize,
    },
    /// A key Darknet does not define for this section, or one whose effect on
    /// inference is not implemented.
    #[error("[{section}] at line {line}: unknown key `{key}` (line {key_line})")]
    UnknownKey {
        /// The section name.
        section: String,
        /// The section's line.
        line: usize,
        /// The key.
        key: String,
        /// The key's own line.
        key_line: usize,
    },
    /// The same key twice in one section.
    #[error("[{section}] at line {line}: key `{key}` repeated at line {key_line}")]
    DuplicateKey {
        /// The section name.
        section: String,
        /// The section's line.
        line: usize,
        /// The key.
        key: String,
        /// The line of the repetition.
        key_line: usize,
    },
    /// A required key is absent.
    #[error("[{section}] at line {line}: missing required key `{key}`")]
    MissingKey {
        /// The section name.
        section: String,
        /// The section's line.
        line: usize,
        /// The key.
        key: &'static str,
    },
    /// A value that does not parse or is out of range.
    #[error("[{section}] at line {line}: bad value `{key}={value}`: expected {expected}")]
    BadValue {
        /// The section name.
        section: String,
        /// The section's line.
        line: usize,
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A `layers=`/`from=` entry that does not name an earlier layer.
    #[error(
        "[{section}] at line {line}: `{key}` refers to layer {reference}, which resolves to {resolved}; \
         layer {index} may only use layers 0..{index}"
    )]
    BadLayerRef {
        /// The section name.
        section: String,
        /// The section's line.
        line: usize,
        /// `layers` or `from`.
        key: &'static str,
        /// The reference as written (negative: relative).
        reference: i64,
        /// The absolute layer it resolves to.
        resolved: i64,
        /// The index of the layer holding the reference.
        index: usize,
    },
}
