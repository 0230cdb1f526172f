//! The largest frame the gate decodes, shared by both JPEG paths: the
//! reduced decoder's header check and the motion gate's full decode,
//! which re-exports it as `decode::MAX_SIDE`. It lives here, below both,
//! so that neither decoder imports the other for it.

/// Largest frame side accepted (8K is 7680).
pub const MAX_SIDE: usize = 8192;
