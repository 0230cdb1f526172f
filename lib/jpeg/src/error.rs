//! [`ScanError`]: how a reduced decode fails once the headers were accepted
//! (the entropy data is damaged or truncated: the frame is corrupt).

/// Why a scan did not decode (the frame is corrupt).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// A bit pattern that is no code of its Huffman table.
    #[error("invalid Huffman code")]
    BadCode,
    /// A coefficient magnitude category above the 8-bit baseline maximum.
    #[error("coefficient size {0} out of range")]
    BadSize(u8),
    /// A run of AC coefficients past the 64th.
    #[error("AC coefficients run past the block end")]
    Overrun,
    /// The entropy data ended before the last block: a truncated frame.
    #[error("entropy data truncated")]
    Truncated,
    /// Whole bytes of entropy data left over before a marker.
    #[error("{0} bytes of entropy data left before a marker")]
    Extraneous(usize),
    /// A restart marker missing or out of sequence.
    #[error("expected restart marker RST{expected}, found {found:#04x}")]
    Restart {
        /// The restart number due.
        expected: u8,
        /// The marker byte found instead (0 for none).
        found: u8,
    },
    /// The scan is not followed by the end-of-image marker.
    #[error("no end-of-image marker after the scan")]
    NoEnd,
}
