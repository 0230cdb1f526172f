//! Typed settings from the environment, read once at start.
//!
//! [`Env`] reads through a lookup function (the process environment, or a
//! map in tests); every error is an [`EnvError`] that names the variable and
//! says what is wrong, and never contains a secret. The same parsers serve
//! flags and files ([`parse_duration`], [`parse_size`]), and [`redact_url`]
//! is the one way a URL with credentials reaches a log line.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A setting that is missing or unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct EnvError {
    /// The environment variable (or flag).
    pub variable: &'static str,
    /// What is wrong, with the value where it is not a secret.
    pub reason: String,
}

impl EnvError {
    /// An error about `variable`.
    pub fn new(variable: &'static str, reason: impl Into<String>) -> Self {
        EnvError {
            variable,
            reason: reason.into(),
        }
    }
}

/// Parses a duration such as `500ms`, `5s`, `1m` or `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration like `500ms`, `5s` or `1m` ({e})"))
}

/// Parses a size in bytes: a plain number, or one with a unit (`KB`, `MB`,
/// `GB` are powers of 1000; `KiB`, `MiB`, `GiB` of 1024), e.g. `20MiB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_size: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "`{text}` is not a size like `20971520`, `512KiB` or `20MiB`"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_size))
        .ok_or_else(|| format!("`{text}` is not a size like `20971520`, `512KiB` or `20MiB`"))
}

/// The parts of `scheme://user:password@host:port/path?query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// `amqp`, `http`, ...
    pub scheme: &'a str,
    /// The user name, still percent-encoded (empty when the URL has none).
    pub user: &'a str,
    /// The password, still percent-encoded.
    pub password: Option<&'a str>,
    /// Everything after the user information: `host[:port][/path][?query]`.
    pub rest: &'a str,
}

impl<'a> UrlParts<'a> {
    /// Splits `url`; `None` when it has no `scheme://`.
    ///
    /// The user information ends at the **last** `@` before the path, so a
    /// password that itself holds an unescaped `@` stays whole.
    pub fn parse(url: &'a str) -> Option<Self> {
        let (scheme, after) = url.split_once("://")?;
        let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let (user, password, rest) = match after[..authority_end].rfind('@') {
            Some(at) => {
                let (user, password) = match after[..at].split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (&after[..at], None),
                };
                (user, password, &after[at + 1..])
            }
            None => ("", None, after),
        };
        Some(UrlParts {
            scheme,
            user,
            password,
            rest,
        })
    }
}

/// Decodes `%XX` escapes; `None` for a broken escape or non-UTF-8 result.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Replaces the password of `scheme://user:password@host/…` with `***`: the
/// one way a URL with credentials reaches a log line or an error.
pub fn redact_url(url: &str) -> String {
    match UrlParts::parse(url) {
        Some(parts) if parts.password.is_some() => {
            format!("{}://{}:***@{}", parts.scheme, parts.user, parts.rest)
        }
        _ => url.to_owned(),
    }
}

/// Reads typed settings through a lookup function.
pub struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

/// The process environment as a lookup function.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl<'a> Env<'a> {
    /// Settings read through `lookup` ([`process_env`], or a map in tests).
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Env { lookup }
    }

    /// The raw value, if set.
    pub fn raw(&self, variable: &str) -> Option<String> {
        (self.lookup)(variable)
    }

    /// The trimmed value, or `None` when unset or blank.
    pub fn optional(&self, variable: &str) -> Option<String> {
        self.raw(variable)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The trimmed value, or `default`.
    pub fn text(&self, variable: &str, default: &str) -> String {
        self.optional(variable)
            .unwrap_or_else(|| default.to_owned())
    }

    /// A value that must be set; `what` says what it is for.
    pub fn required(&self, variable: &'static str, what: &str) -> Result<String, EnvError> {
        self.optional(variable)
            .ok_or_else(|| EnvError::new(variable, format!("is required: {what}")))
    }

    /// A path that must be set.
    pub fn path(&self, variable: &'static str, what: &str) -> Result<PathBuf, EnvError> {
        self.required(variable, &format!("the path of {what}"))
            .map(PathBuf::from)
    }

    /// The value (or `default`) through `parse`, whose error becomes the reason.
    pub fn parse<T>(
        &self,
        variable: &'static str,
        default: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, EnvError> {
        parse(&self.text(variable, default)).map_err(|reason| EnvError::new(variable, reason))
    }

    /// Any `FromStr` value whose error displays what is wrong.
    pub fn from_str<T>(&self, variable: &'static str, default: &str) -> Result<T, EnvError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.parse(variable, default, |text| {
            text.parse::<T>().map_err(|e| e.to_string())
        })
    }

    /// A duration (zero allowed).
    pub fn duration(&self, variable: &'static str, default: &str) -> Result<Duration, EnvError> {
        self.parse(variable, default, parse_duration)
    }

    /// A duration above zero.
    pub fn positive_duration(
        &self,
        variable: &'static str,
        default: &str,
    ) -> Result<Duration, EnvError> {
        self.parse(variable, default, |text| {
            let value = parse_duration(text)?;
            if value.is_zero() {
                return Err(format!("`{text}` must be above zero"));
            }
            Ok(value)
        })
    }

    /// An integer within `range`.
    pub fn integer<T>(
        &self,
        variable: &'static str,
        default: &str,
        range: RangeInclusive<T>,
    ) -> Result<T, EnvError>
    where
        T: FromStr + PartialOrd + std::fmt::Display,
    {
        self.parse(variable, default, |text| {
            text.parse::<T>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    format!(
                        "`{text}` is not an integer in {}..={}",
                        range.start(),
                        range.end()
                    )
                })
        })
    }

    /// A number in 0..=1.
    pub fn fraction(&self, variable: &'static str, default: &str) -> Result<f32, EnvError> {
        self.parse(variable, default, |text| {
            text.parse::<f32>()
                .ok()
                .filter(|v| (0.0..=1.0).contains(v))
                .ok_or_else(|| format!("`{text}` is not a number in 0..=1"))
        })
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    pub fn flag(&self, variable: &'static str, default: bool) -> Result<bool, EnvError> {
        let default = if default { "true" } else { "false" };
        self.parse(variable, default, |text| {
            match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(format!("`{text}` is not `true` or `false`")),
            }
        })
    }

    /// A size in bytes ([`parse_size`]) above zero.
    pub fn size(&self, variable: &'static str, default: &str) -> Result<u64, EnvError> {
        self.parse(variable, default, |text| {
            let size = parse_size(text)?;
            if size == 0 {
                return Err(format!("`{text}` must be above zero"));
            }
            Ok(size)
        })
    }

    /// A socket address such as `0.0.0.0:9090`.
    pub fn socket_addr(
        &self,
        variable: &'static str,
        default: &str,
    ) -> Result<SocketAddr, EnvError> {
        self.parse(variable, default, |text| {
            text.parse::<SocketAddr>()
                .map_err(|e| format!("`{text}` is not `host:port` like 0.0.0.0:9090 ({e})"))
        })
    }

    /// A listen address, or `None` for `off` (or set but blank).
    pub fn listen_addr(
        &self,
        variable: &'static str,
        default: &str,
    ) -> Result<Option<SocketAddr>, EnvError> {
        if self.raw(variable).is_some_and(|v| v.trim().is_empty()) {
            return Ok(None);
        }
        self.parse(variable, default, |text| match text {
            "off" => Ok(None),
            addr => addr
                .parse::<SocketAddr>()
                .map(Some)
                .map_err(|e| format!("`{addr}` is not `host:port` or `off` ({e})")),
        })
    }

    /// A URL with one of `schemes`; errors show it with its password redacted.
    pub fn url(
        &self,
        variable: &'static str,
        default: &str,
        schemes: &[&str],
    ) -> Result<String, EnvError> {
        let url = self.text(variable, default);
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        if scheme.is_none_or(|s| !schemes.contains(&s)) {
            return Err(EnvError::new(
                variable,
                format!(
                    "`{}` is not a {} URL",
                    redact_url(&url),
                    schemes.join(" or ")
                ),
            ));
        }
        Ok(url)
    }

    /// A secret from `variable`, or from the file named by `file_variable`
    /// (the file's content, trimmed). `None` when neither is set. Errors
    /// never show the secret.
    pub fn secret(
        &self,
        variable: &'static str,
        file_variable: &'static str,
    ) -> Result<Option<String>, EnvError> {
        if let Some(value) = self.optional(variable) {
            return Ok(Some(value));
        }
        let Some(path) = self.optional(file_variable) else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| EnvError::new(file_variable, format!("cannot read `{path}`: {e}")))?;
        let value = text.trim();
        if value.is_empty() {
            return Err(EnvError::new(file_variable, format!("`{path}` is empty")));
        }
        Ok(Some(value.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with<T>(vars: &[(&str, &str)], read: impl FnOnce(&Env<'_>) -> T) -> T {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let lookup = move |name: &str| map.get(name).cloned();
        read(&Env::new(&lookup))
    }

    #[test]
    fn redaction_hides_a_password_that_holds_an_at_sign() {
        assert_eq!(
            redact_url("amqp://city:p@ss@broker:5672/%2f"),
            "amqp://city:***@broker:5672/%2f"
        );
        assert_eq!(
            redact_url("amqp://city:s3cret@broker:5672/vhost@1"),
            "amqp://city:***@broker:5672/vhost@1"
        );
        assert_eq!(redact_url("http://u:p@host"), "http://u:***@host");
        assert_eq!(redact_url("amqp://broker:5672/"), "amqp://broker:5672/");
        assert_eq!(redact_url("amqp://user@broker/"), "amqp://user@broker/");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn urls_split_at_the_last_at_sign_and_decode() {
        let parts = UrlParts::parse("amqp://u:p%40ss@word@broker:5672/city").expect("url");
        assert_eq!(
            (parts.user, parts.password, parts.rest),
            ("u", Some("p%40ss@word"), "broker:5672/city")
        );
        assert_eq!(percent_decode("p%40ss").as_deref(), Some("p@ss"));
        assert_eq!(percent_decode("%zz"), None);
    }

    #[test]
    fn durations_sizes_and_integers_parse_or_name_the_variable() {
        with(
            &[
                ("WAIT", "250ms"),
                ("ZERO", "0s"),
                ("BAD", "soon"),
                ("SIZE", "20MiB"),
                ("COUNT", "7"),
            ],
            |env| {
                assert_eq!(env.duration("WAIT", "1s"), Ok(Duration::from_millis(250)));
                assert_eq!(env.duration("UNSET", "1m"), Ok(Duration::from_secs(60)));
                assert_eq!(env.duration("ZERO", "1s"), Ok(Duration::ZERO));
                let error = env.positive_duration("ZERO", "1s").expect_err("zero");
                assert_eq!(error.variable, "ZERO");
                let error = env.duration("BAD", "1s").expect_err("bad");
                assert!(error.to_string().starts_with("BAD: `soon`"), "{error}");
                assert_eq!(env.size("SIZE", "1"), Ok(20 << 20));
                assert_eq!(env.size("UNSET", "512KB"), Ok(512_000));
                assert_eq!(
                    env.integer("COUNT", "1", 1..=5u32)
                        .expect_err("range")
                        .variable,
                    "COUNT"
                );
                assert_eq!(env.integer("COUNT", "1", 1..=9u32), Ok(7));
            },
        );
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("99999999999999999999").is_err());
    }

    #[test]
    fn addresses_flags_urls_and_secrets() {
        let dir = std::env::temp_dir().join(format!("safecity-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("token");
        std::fs::write(&file, "  t0ken\n").expect("write");
        let file_text = file.display().to_string();
        with(
            &[
                ("HTTP", "off"),
                ("ADDR", "127.0.0.1:99"),
                ("HIDE", "no"),
                ("BROKER", "http://u:hunter2@x/"),
                ("TOKEN_FILE", &file_text),
                ("EMPTY_FILE", "/nonexistent/secret"),
            ],
            |env| {
                assert_eq!(env.listen_addr("HTTP", "0.0.0.0:1"), Ok(None));
                assert_eq!(
                    env.socket_addr("ADDR", "0.0.0.0:1"),
                    Ok("127.0.0.1:99".parse().expect("addr"))
                );
                assert_eq!(env.flag("HIDE", true), Ok(false));
                assert_eq!(env.flag("UNSET", true), Ok(true));
                let error = env
                    .url("BROKER", "", &["amqp", "amqps"])
                    .expect_err("scheme");
                assert!(!error.to_string().contains("hunter2"), "{error}");
                assert_eq!(env.secret("TOKEN", "TOKEN_FILE"), Ok(Some("t0ken".into())));
                assert_eq!(env.secret("NONE", "NONE_FILE"), Ok(None));
                let error = env.secret("X", "EMPTY_FILE").expect_err("missing file");
                assert_eq!(error.variable, "EMPTY_FILE");
            },
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
