//! MJPEG over HTTP (`multipart/x-mixed-replace`): an incremental part parser
//! (pure) and the encoding of parts for the simulator.
//!
//! Parts are delimited by `--boundary` lines. With a `Content-Length` part
//! header the body is taken by length (binary safe); without one the body ends
//! at the next boundary line, as many IP cameras send it. Cameras that put the
//! leading dashes into the `boundary=` parameter itself are accepted too.

/// Errors of the MJPEG stream format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MjpegError {
    /// The response is not `multipart/x-mixed-replace` with a boundary.
    #[error(
        "not an MJPEG stream: content type `{0}` (want multipart/x-mixed-replace; boundary=...)"
    )]
    NotMultipart(String),
    /// A part (or garbage between parts) grew beyond the limit.
    #[error("MJPEG part larger than {limit} bytes without a boundary")]
    Oversized {
        /// The limit in bytes.
        limit: usize,
    },
    /// A part's `Content-Length` header is not a number.
    #[error("MJPEG part has a bad Content-Length `{0}`")]
    BadLength(String),
}

/// Extracts the boundary from a `Content-Type` header value.
pub fn boundary(content_type: &str) -> Result<String, MjpegError> {
    let not = || MjpegError::NotMultipart(content_type.to_owned());
    let mut params = content_type.split(';');
    let mime = params.next().unwrap_or("").trim().to_ascii_lowercase();
    if !mime.starts_with("multipart/") {
        return Err(not());
    }
    params
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|b| !b.is_empty())
        .ok_or_else(not)
}

/// One part of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The part's body (a JPEG, if the camera behaves).
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for a boundary line.
    Boundary,
    /// Reading part headers.
    Headers,
    /// Reading a body of known or unknown length.
    Body(Option<usize>),
}

/// Incremental parser: feed bytes with [`MjpegParser::push`], take parts with
/// [`MjpegParser::next_part`].
#[derive(Debug, Clone)]
pub struct MjpegParser {
    token: Vec<u8>,
    buf: Vec<u8>,
    /// Where to resume searching in `buf` (bytes before it were already scanned).
    scanned: usize,
    state: State,
    limit: usize,
}

impl MjpegParser {
    /// A parser for `boundary` (as in the Content-Type) with a part size limit.
    pub fn new(boundary: &str, limit: usize) -> Self {
        let token = boundary.trim_start_matches('-');
        MjpegParser {
            token: format!("--{token}").into_bytes(),
            buf: Vec::new(),
            scanned: 0,
            state: State::Boundary,
            limit,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete part, if the buffered bytes hold one.
    pub fn next_part(&mut self) -> Result<Option<Part>, MjpegError> {
        loop {
            match self.state {
                State::Boundary => {
                    let Some(at) = find(&self.buf, &self.token, self.scanned) else {
                        self.scanned = self.buf.len().saturating_sub(self.token.len());
                        return self.check_limit();
                    };
                    let Some(eol) = find(&self.buf, b"\n", at) else {
                        self.scanned = at;
                        return self.check_limit();
                    };
                    self.consume(eol + 1);
                    self.state = State::Headers;
                }
                State::Headers => {
                    let Some((end, next)) = header_end(&self.buf) else {
                        return self.check_limit();
                    };
                    let headers = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                    let mut length = None;
                    for line in headers.lines() {
                        if let Some((k, v)) = line.split_once(':')
                            && k.trim().eq_ignore_ascii_case("content-length")
                        {
                            let v = v.trim();
                            let n: usize =
                                v.parse().map_err(|_| MjpegError::BadLength(v.to_owned()))?;
                            if n > self.limit {
                                return Err(MjpegError::Oversized { limit: self.limit });
                            }
                            length = Some(n);
                        }
                    }
                    self.consume(next);
                    self.state = State::Body(length);
                }
                State::Body(Some(n)) => {
                    if self.buf.len() < n {
                        return Ok(None);
                    }
                    let body = self.buf[..n].to_vec();
                    self.consume(n);
                    self.state = State::Boundary;
                    return Ok(Some(Part { body }));
                }
                State::Body(None) => {
                    let Some(at) = find(&self.buf, &self.token, self.scanned) else {
                        self.scanned = self.buf.len().saturating_sub(self.token.len());
                        return self.check_limit();
                    };
                    let mut end = at;
                    while end > 0 && matches!(self.buf[end - 1], b'\n' | b'\r') {
                        end -= 1;
                    }
                    let body = self.buf[..end].to_vec();
                    self.consume(at);
                    self.state = State::Boundary;
                    return Ok(Some(Part { body }));
                }
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.buf.drain(..n);
        self.scanned = 0;
    }

    fn check_limit(&mut self) -> Result<Option<Part>, MjpegError> {
        if self.buf.len() > self.limit + 4096 {
            self.buf.clear();
            self.scanned = 0;
            self.state = State::Boundary;
            return Err(MjpegError::Oversized { limit: self.limit });
        }
        Ok(None)
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from >= haystack.len() || needle.is_empty() {
        return None;
    }
    let first = needle[0];
    let mut i = from;
    while i + needle.len() <= haystack.len() {
        match haystack[i..].iter().position(|&b| b == first) {
            None => return None,
            Some(p) => i += p,
        }
        if i + needle.len() <= haystack.len() && &haystack[i..i + needle.len()] == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// End of the header block: (end of headers, start of body).
fn header_end(buf: &[u8]) -> Option<(usize, usize)> {
    // An empty header block: the body starts right after the boundary line.
    if buf.starts_with(b"\r\n") {
        return Some((0, 2));
    }
    if buf.starts_with(b"\n") {
        return Some((0, 1));
    }
    let crlf = find(buf, b"\r\n\r\n", 0).map(|i| (i, i + 4));
    let lf = find(buf, b"\n\n", 0).map(|i| (i, i + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safecity_cctv_sim::mjpeg::encode_part;

    #[test]
    fn boundary_is_read_from_the_content_type() {
        assert_eq!(
            boundary("multipart/x-mixed-replace; boundary=frame"),
            Ok("frame".to_owned())
        );
        assert_eq!(
            boundary("multipart/x-mixed-replace;boundary=\"--myboundary\""),
            Ok("--myboundary".to_owned())
        );
        assert!(boundary("image/jpeg").is_err());
        assert!(boundary("multipart/x-mixed-replace").is_err());
    }

    #[test]
    fn parts_with_length_survive_any_split() {
        let mut stream = Vec::new();
        let bodies: Vec<Vec<u8>> = vec![
            b"\xFF\xD8--frame inside\xFF\xD9".to_vec(),
            vec![0xFF, 0xD8, 0xFF, 0xD9],
        ];
        for body in &bodies {
            stream.extend(encode_part("frame", body));
        }
        for chunk in [1, 3, 7, stream.len()] {
            let mut parser = MjpegParser::new("frame", 1 << 20);
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                parser.push(piece);
                while let Some(part) = parser.next_part().expect("valid") {
                    got.push(part.body);
                }
            }
            assert_eq!(got, bodies, "chunk size {chunk}");
        }
    }

    #[test]
    fn parts_without_length_end_at_the_next_boundary() {
        let stream = b"--myboundary\r\nContent-Type: image/jpeg\r\n\r\nAAAA\r\n--myboundary\nContent-Type: image/jpeg\n\nBB\r\n--myboundary\r\n";
        let mut parser = MjpegParser::new("--myboundary", 1 << 20);
        parser.push(stream);
        assert_eq!(
            parser.next_part(),
            Ok(Some(Part {
                body: b"AAAA".to_vec()
            }))
        );
        assert_eq!(
            parser.next_part(),
            Ok(Some(Part {
                body: b"BB".to_vec()
            }))
        );
        assert_eq!(parser.next_part(), Ok(None));
    }

    #[test]
    fn garbage_without_boundary_is_bounded() {
        let mut parser = MjpegParser::new("frame", 100);
        parser.push(&[b'x'; 5000]);
        assert_eq!(
            parser.next_part(),
            Err(MjpegError::Oversized { limit: 100 })
        );
        parser.push(&encode_part("frame", b"ok"));
        assert_eq!(
            parser.next_part(),
            Ok(Some(Part {
                body: b"ok".to_vec()
            }))
        );
    }
}
