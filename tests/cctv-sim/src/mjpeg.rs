//! MJPEG (`multipart/x-mixed-replace`) parts, as IP cameras send them.

/// The multipart boundary the simulator uses.
pub const BOUNDARY: &str = "safecityframe";

/// One part: the boundary line, headers, the JPEG, and the closing CRLF.
pub fn encode_part(boundary: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 96);
    out.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_carries_its_length() {
        let part = encode_part("b", b"\xFF\xD8jpeg");
        let text = String::from_utf8_lossy(&part);
        assert!(text.starts_with("--b\r\nContent-Type: image/jpeg\r\nContent-Length: 6\r\n\r\n"));
        assert!(part.ends_with(b"jpeg\r\n"));
    }
}
