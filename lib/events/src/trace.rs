//! W3C trace context (`traceparent`) carried by events from camera to post.
//!
//! A handler's span records the trace id and its parent span id taken from the
//! incoming event, and events it emits carry the same trace id with the handler's
//! own span id as parent. Any log or tracing backend can stitch the chain together
//! by `trace_id`.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// A parsed `traceparent` header: version 00, trace id, parent span id, flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// 16-byte trace id, never all zero.
    pub trace_id: u128,
    /// 8-byte id of the span that caused this event, never zero.
    pub parent_id: u64,
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Starts a new trace with a random trace id and span id, sampled.
    pub fn new_root() -> Self {
        TraceParent {
            trace_id: nonzero_u128(),
            parent_id: nonzero_u64(),
            flags: 1,
        }
    }

    /// A child in the same trace: same trace id and flags, a fresh span id.
    pub fn child(&self) -> Self {
        TraceParent {
            trace_id: self.trace_id,
            parent_id: nonzero_u64(),
            flags: self.flags,
        }
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        self.trace_id_display().to_string()
    }

    /// The trace id, formatted as 32 lowercase hex digits without allocating.
    pub fn trace_id_display(&self) -> impl fmt::Display + use<> {
        struct TraceId(u128);
        impl fmt::Display for TraceId {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:032x}", self.0)
            }
        }
        TraceId(self.trace_id)
    }

    /// The parent span id as 16 lowercase hex digits.
    pub fn parent_id_hex(&self) -> String {
        format!("{:016x}", self.parent_id)
    }
}

// Random ids come from uuid's thread-local generator (feature `fast-rng`): no
// system call per delivery.
fn nonzero_u128() -> u128 {
    loop {
        let id = uuid::Uuid::new_v4().as_u128();
        if id != 0 {
            return id;
        }
    }
}

fn nonzero_u64() -> u64 {
    // The low 64 bits of a v4 UUID are random apart from the variant bits.
    loop {
        let id = uuid::Uuid::new_v4().as_u128() as u64;
        if id != 0 {
            return id;
        }
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

impl FromStr for TraceParent {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.split('-').collect();
        let [version, trace, parent, flags] = parts.as_slice() else {
            return Err(format!(
                "`{text}` is not `version-traceid-parentid-flags` (W3C trace context)"
            ));
        };
        let hex = |part: &str, len: usize, what: &str| {
            if part.len() != len || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                Err(format!("{what} `{part}` is not {len} hex digits"))
            } else {
                Ok(())
            }
        };
        hex(version, 2, "version")?;
        if *version == "ff" {
            return Err("version `ff` is forbidden".to_owned());
        }
        hex(trace, 32, "trace id")?;
        hex(parent, 16, "parent id")?;
        hex(flags, 2, "flags")?;
        let trace_id = u128::from_str_radix(trace, 16).map_err(|e| e.to_string())?;
        let parent_id = u64::from_str_radix(parent, 16).map_err(|e| e.to_string())?;
        let flags = u8::from_str_radix(flags, 16).map_err(|e| e.to_string())?;
        if trace_id == 0 {
            return Err("trace id must not be all zeros".to_owned());
        }
        if parent_id == 0 {
            return Err("parent id must not be all zeros".to_owned());
        }
        Ok(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }
}

impl Serialize for TraceParent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_the_w3c_example() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed: TraceParent = text.parse().expect("valid");
        assert_eq!(parsed.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(parsed.parent_id, 0x00f067aa0ba902b7);
        assert_eq!(parsed.flags, 1);
        assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert!(bad.parse::<TraceParent>().is_err(), "{bad}");
        }
    }

    #[test]
    fn child_keeps_the_trace_and_changes_the_span() {
        let root = TraceParent::new_root();
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.parent_id, root.parent_id);
        assert_eq!(child.flags, root.flags);
    }
}
