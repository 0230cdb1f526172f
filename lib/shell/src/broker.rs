//! The broker-session supervisor: connect, run a session on the connection,
//! and when it is lost reconnect with backoff, until cancelled. The function
//! runtime, the motion gate's publisher and the scaler all run their broker
//! work through [`supervise`]; [`bounded`] keeps any single request from
//! waiting forever on a broker that accepts TCP but does not answer.

use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::env::redact_url;

/// The longest any one AMQP request may take (connecting, opening a channel,
/// a declare, a bind, closing): past it the session counts as lost.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long closing a connection may take once the process is stopping: a
/// broker that does not answer must not hold up a shutdown.
pub const CLOSE_TIMEOUT_ON_SHUTDOWN: Duration = Duration::from_secs(1);

/// An AMQP request that got no answer within [`REQUEST_TIMEOUT`].
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("{0}: no answer from the broker within 10 s")]
pub struct RequestTimedOut(pub &'static str);

/// `operation` bounded by [`REQUEST_TIMEOUT`]; `what` names it in the error.
/// Callers unwrap both layers with `??`.
pub async fn bounded<F: Future>(
    what: &'static str,
    operation: F,
) -> Result<F::Output, RequestTimedOut> {
    tokio::time::timeout(REQUEST_TIMEOUT, operation)
        .await
        .map_err(|_| RequestTimedOut(what))
}

/// Where and how a supervised session connects.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerSettings {
    /// AMQP URL, credentials included (never logged: see [`BrokerSettings::redacted_url`]).
    pub url: String,
    /// The connection name the broker shows (`rabbitmqctl list_connections`).
    pub connection_name: String,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
}

impl std::fmt::Debug for BrokerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerSettings")
            .field("url", &self.redacted_url())
            .field("connection_name", &self.connection_name)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .finish()
    }
}

impl BrokerSettings {
    /// The URL with its password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// Opens a connection, bounded by [`REQUEST_TIMEOUT`].
    pub async fn connect(&self) -> Result<Connection, String> {
        let properties = ConnectionProperties::default()
            .with_connection_name(self.connection_name.as_str().into());
        match bounded("connecting", Connection::connect(&self.url, properties)).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => Err(error.to_string()),
            Err(timed_out) => Err(timed_out.to_string()),
        }
    }
}

/// How one session on a connection ended.
#[derive(Debug)]
pub enum SessionEnd<E> {
    /// The process is stopping and the session finished its drain.
    Stopped,
    /// The connection broke or a request failed: reconnect. `worked` says the
    /// session had done its job for a while (the backoff starts over).
    Lost {
        /// What happened, safe to log (no credentials).
        error: String,
        /// Whether the session got as far as doing its work.
        worked: bool,
    },
    /// Reconnecting cannot help (e.g. the broker refuses the topology):
    /// [`supervise`] returns the error.
    Fatal(E),
}

impl<E> SessionEnd<E> {
    /// A session that was lost before it did any work.
    pub fn lost(error: impl std::fmt::Display) -> Self {
        SessionEnd::Lost {
            error: error.to_string(),
            worked: false,
        }
    }
}

/// One kind of work done on a broker connection, run by [`supervise`].
pub trait BrokerSession: Send {
    /// Why the work cannot go on at all ([`SessionEnd::Fatal`]).
    type Error: Send;

    /// Runs one session on a fresh connection until it is lost or the
    /// process stops; after a cancellation it drains and returns
    /// [`SessionEnd::Stopped`].
    fn run(
        &mut self,
        connection: &Connection,
    ) -> impl Future<Output = SessionEnd<Self::Error>> + Send;

    /// Called after every failed connect or lost session, before waiting
    /// `retry_in`: the place to log, mark not-ready and count.
    fn lost(&mut self, error: &str, retry_in: Duration);
}

/// Runs `session` on a fresh connection until `cancel`, reconnecting after
/// each loss with a capped backoff. The connection is closed (bounded)
/// after every session.
pub async fn supervise<S: BrokerSession>(
    settings: &BrokerSettings,
    cancel: &CancellationToken,
    session: &mut S,
) -> Result<(), S::Error> {
    let mut backoff = Backoff::new(settings.reconnect_min, settings.reconnect_max);
    while !cancel.is_cancelled() {
        let connected = tokio::select! {
            () = cancel.cancelled() => break,
            connected = settings.connect() => connected,
        };
        let end = match connected {
            Ok(connection) => {
                let end = session.run(&connection).await;
                if connection.status().connected() {
                    let close = connection.close(200, "session ends".into());
                    let limit = if cancel.is_cancelled() {
                        CLOSE_TIMEOUT_ON_SHUTDOWN
                    } else {
                        REQUEST_TIMEOUT
                    };
                    let _ = tokio::time::timeout(limit, close).await;
                }
                end
            }
            Err(error) => SessionEnd::lost(error),
        };
        match end {
            SessionEnd::Stopped => break,
            SessionEnd::Fatal(error) => return Err(error),
            SessionEnd::Lost { error, worked } => {
                if cancel.is_cancelled() {
                    break;
                }
                if worked {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                session.lost(&error, delay);
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable_broker() -> BrokerSettings {
        // A port nothing listens on: every connect is refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        BrokerSettings {
            url: format!("amqp://user:s3cret@127.0.0.1:{port}/%2f"),
            connection_name: "test".into(),
            reconnect_min: Duration::from_millis(10),
            reconnect_max: Duration::from_millis(40),
        }
    }

    /// Records the delays it is told to wait; cancels after four.
    struct Refused {
        delays: Vec<Duration>,
        cancel: CancellationToken,
    }

    impl BrokerSession for Refused {
        type Error = String;

        async fn run(&mut self, _connection: &Connection) -> SessionEnd<String> {
            unreachable!("nothing listens")
        }

        fn lost(&mut self, error: &str, retry_in: Duration) {
            assert!(!error.contains("s3cret"), "{error}");
            self.delays.push(retry_in);
            if self.delays.len() == 4 {
                self.cancel.cancel();
            }
        }
    }

    #[tokio::test]
    async fn refused_connects_back_off_and_cancellation_ends_the_loop() {
        let settings = unreachable_broker();
        let cancel = CancellationToken::new();
        let mut session = Refused {
            delays: Vec::new(),
            cancel: cancel.clone(),
        };
        let result = supervise(&settings, &cancel, &mut session).await;
        assert!(result.is_ok());
        assert_eq!(session.delays, [10, 20, 40, 40].map(Duration::from_millis));
    }

    #[test]
    fn settings_never_show_the_password() {
        let mut settings = unreachable_broker();
        settings.url = "amqp://user:p@ss@broker:5672/%2f".into();
        let text = format!("{settings:?}");
        assert!(
            !text.contains("p@ss") && text.contains("user:***@broker"),
            "{text}"
        );
    }
}
