//! Where a camera's JPEG frames come from: an MJPEG HTTP stream or a folder
//! of JPEG files.
//!
//! - `http://[user:pass@]host:port/path`: `GET`, expect
//!   `multipart/x-mixed-replace`, parse parts as they arrive. No byte for
//!   `stall_timeout` = a stalled camera (the caller reconnects).
//! - `dir:///abs/path?fps=15&pace=true&repeat=false`: the folder's `*.jpg`/
//!   `*.jpeg` files in name order, stream time `i / fps`; `pace=false` reads
//!   as fast as the gate can (tests, benchmarks), `repeat=true` loops.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt as _, Empty};
use hyper::Request;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::mjpeg::{MjpegError, MjpegParser, boundary};

/// Largest accepted part (a 4K JPEG is well under this).
pub const MAX_PART_BYTES: usize = 16 << 20;

/// Why a source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// TCP connect failed or timed out.
    #[error("connecting to {authority}: {reason}")]
    Connect {
        /// host:port.
        authority: String,
        /// Why.
        reason: String,
    },
    /// HTTP protocol error.
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
    /// The camera answered with a non-200 status.
    #[error("camera answered HTTP {0}")]
    Status(u16),
    /// The stream format is wrong.
    #[error(transparent)]
    Mjpeg(#[from] MjpegError),
    /// No byte arrived for the stall timeout.
    #[error("stalled: no data for {0:?}")]
    Stalled(Duration),
    /// The camera closed the stream.
    #[error("the camera closed the stream")]
    Closed,
    /// A folder could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A parsed camera source.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceUrl {
    /// An MJPEG stream.
    Http {
        /// `host:port`.
        authority: String,
        /// Path and query.
        path: String,
        /// `user:password` for basic auth, if any.
        credentials: Option<String>,
    },
    /// A folder of JPEG files.
    Dir {
        /// The folder.
        path: PathBuf,
        /// Frames per second of stream time.
        fps: f64,
        /// Sleep between frames to keep `fps` in real time.
        pace: bool,
        /// Start over at the end.
        repeat: bool,
    },
}

impl SourceUrl {
    /// The URL with any password removed (for logs).
    pub fn redacted(&self) -> String {
        match self {
            SourceUrl::Http {
                authority, path, ..
            } => format!("http://{authority}{path}"),
            SourceUrl::Dir { path, fps, .. } => format!("dir://{}?fps={fps}", path.display()),
        }
    }
}

impl FromStr for SourceUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(rest) = text.strip_prefix("http://") {
            let (hostpart, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            let (credentials, authority) = match hostpart.rsplit_once('@') {
                Some((c, a)) => (Some(c.to_owned()), a),
                None => (None, hostpart),
            };
            if authority.is_empty() {
                return Err(format!("`{text}` has no host"));
            }
            let authority = if authority.contains(':') {
                authority.to_owned()
            } else {
                format!("{authority}:80")
            };
            return Ok(SourceUrl::Http {
                authority,
                path: path.to_owned(),
                credentials,
            });
        }
        if let Some(rest) = text.strip_prefix("dir://") {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            if path.is_empty() {
                return Err(format!("`{text}` has no folder"));
            }
            let (mut fps, mut pace, mut repeat) = (15.0, true, false);
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let flag = |v: &str| match v {
                    "true" | "1" => Ok(true),
                    "false" | "0" => Ok(false),
                    _ => Err(format!("`{k}={v}` is not true/false")),
                };
                match k {
                    "fps" => {
                        fps = v
                            .parse::<f64>()
                            .ok()
                            .filter(|f| *f > 0.0 && *f <= 10_000.0)
                            .ok_or_else(|| format!("`fps={v}` is not within (0, 10000]"))?;
                    }
                    "pace" => pace = flag(v)?,
                    "repeat" => repeat = flag(v)?,
                    _ => return Err(format!("unknown parameter `{k}` in `{text}`")),
                }
            }
            return Ok(SourceUrl::Dir {
                path: PathBuf::from(path),
                fps,
                pace,
                repeat,
            });
        }
        Err(format!(
            "`{text}` is not an http:// (MJPEG) or dir:// (JPEG folder) source"
        ))
    }
}

/// An open MJPEG stream.
#[derive(Debug)]
pub struct MjpegStream {
    body: Incoming,
    parser: MjpegParser,
    stall_timeout: Duration,
    connection: JoinHandle<()>,
}

impl Drop for MjpegStream {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl MjpegStream {
    /// Connects and checks the response (status 200, multipart content type).
    pub async fn open(
        authority: &str,
        path: &str,
        credentials: Option<&str>,
        stall_timeout: Duration,
    ) -> Result<Self, SourceError> {
        let connect_error = |reason: String| SourceError::Connect {
            authority: authority.to_owned(),
            reason,
        };
        let tcp = tokio::time::timeout(stall_timeout, TcpStream::connect(authority))
            .await
            .map_err(|_| connect_error(format!("no answer within {stall_timeout:?}")))?
            .map_err(|e| connect_error(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(SourceError::Http)?;
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = Request::get(path).header(hyper::header::HOST, authority);
        if let Some(c) = credentials {
            let token = base64::engine::general_purpose::STANDARD.encode(c);
            request = request.header(hyper::header::AUTHORIZATION, format!("Basic {token}"));
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| connect_error(e.to_string()))?;
        let response = tokio::time::timeout(stall_timeout, sender.send_request(request))
            .await
            .map_err(|_| SourceError::Stalled(stall_timeout))??;
        if response.status() != hyper::StatusCode::OK {
            connection.abort();
            return Err(SourceError::Status(response.status().as_u16()));
        }
        let content_type = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let boundary = boundary(&content_type)?;
        Ok(MjpegStream {
            body: response.into_body(),
            parser: MjpegParser::new(&boundary, MAX_PART_BYTES),
            stall_timeout,
            connection,
        })
    }

    /// The next part's body; errors on stall, close or format errors.
    pub async fn next_jpeg(&mut self) -> Result<Vec<u8>, SourceError> {
        loop {
            if let Some(part) = self.parser.next_part()? {
                return Ok(part.body);
            }
            let frame = tokio::time::timeout(self.stall_timeout, self.body.frame())
                .await
                .map_err(|_| SourceError::Stalled(self.stall_timeout))?;
            match frame {
                None => return Err(SourceError::Closed),
                Some(Err(e)) => return Err(SourceError::Http(e)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.parser.push(&data);
                    }
                }
            }
        }
    }
}

/// The JPEG files of a folder, in name order.
pub fn list_jpegs(path: &std::path::Path) -> Result<Vec<PathBuf>, SourceError> {
    let io = |source| SourceError::Io {
        path: path.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let p = entry.map_err(io)?.path();
        let ext = p
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if matches!(ext.as_deref(), Some("jpg" | "jpeg")) {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        assert_eq!(
            "http://admin:pw@10.0.0.5/video.mjpg".parse(),
            Ok(SourceUrl::Http {
                authority: "10.0.0.5:80".into(),
                path: "/video.mjpg".into(),
                credentials: Some("admin:pw".into()),
            })
        );
        let url: SourceUrl = "http://admin:pw@10.0.0.5/video.mjpg".parse().expect("url");
        assert_eq!(url.redacted(), "http://10.0.0.5:80/video.mjpg");
        assert_eq!(
            "dir:///tmp/frames?fps=30&pace=false".parse(),
            Ok(SourceUrl::Dir {
                path: "/tmp/frames".into(),
                fps: 30.0,
                pace: false,
                repeat: false,
            })
        );
        assert!("dir:///tmp?fps=0".parse::<SourceUrl>().is_err());
        assert!("rtsp://cam/1".parse::<SourceUrl>().is_err());
    }
}
