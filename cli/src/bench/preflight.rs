//! What every run of the suite needs before it starts: the local RabbitMQ,
//! answering on AMQP and through its management API (the scaler, the gate's
//! publisher, the cold-start and frame-to-effect benches read queue depths
//! there). Checked once, up front, so a missing plugin is one clear error
//! instead of failed rows after twenty minutes of other benches.

use std::time::Duration;

/// The broker the benches use (their defaults; guest/guest).
const AMQP: &str = "127.0.0.1:5672";
/// Its management API.
const MANAGEMENT: &str = "http://127.0.0.1:15672/api/overview";

/// Why the broker is not ready for the benches.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// Nothing listens on the AMQP port.
    #[error(
        "RabbitMQ is not answering on {address} ({source}): start it with scripts/ensure-rabbitmq.sh"
    )]
    Amqp {
        /// The AMQP address tried.
        address: String,
        /// Why the connection failed.
        source: std::io::Error,
    },
    /// The management API does not answer, or refuses guest.
    #[error(
        "RabbitMQ's management API at {url} is not answering ({reason}): the benches need the \
         rabbitmq_management plugin; scripts/ensure-rabbitmq.sh enables it"
    )]
    Management {
        /// The URL tried.
        url: String,
        /// Why it failed.
        reason: String,
    },
}

/// Checks the benches' broker: an AMQP TCP connection and an
/// authenticated `GET /api/overview`, each within two seconds.
pub async fn check_broker() -> Result<(), PreflightError> {
    check_broker_at(AMQP, MANAGEMENT).await
}

/// [`check_broker`] against the given AMQP address and management URL.
async fn check_broker_at(amqp: &str, management: &str) -> Result<(), PreflightError> {
    let timeout = Duration::from_secs(2);
    let amqp_error = |source| PreflightError::Amqp {
        address: amqp.to_owned(),
        source,
    };
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(amqp)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(amqp_error(e)),
        Err(_) => {
            let late = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 2 s");
            return Err(amqp_error(late));
        }
    }
    let management_error = |reason: String| PreflightError::Management {
        url: management.to_owned(),
        reason,
    };
    let response = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| management_error(e.to_string()))?
        .get(management)
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .map_err(|e| management_error(e.to_string()))?;
    if !response.status().is_success() {
        return Err(management_error(format!("HTTP {}", response.status())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback port with nothing listening on it (bound, then released).
    fn closed_port() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        drop(listener);
        address
    }

    #[tokio::test]
    async fn no_broker_is_one_error_that_says_how_to_start_it() {
        let err = check_broker_at(&closed_port(), MANAGEMENT)
            .await
            .expect_err("nothing listens");
        assert!(matches!(err, PreflightError::Amqp { .. }), "{err:?}");
        assert!(
            err.to_string().contains("scripts/ensure-rabbitmq.sh"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_missing_management_api_names_the_plugin() {
        // A real AMQP-side listener, and a management URL where nothing answers.
        let amqp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let amqp = amqp.local_addr().expect("address").to_string();
        let management = format!("http://{}/api/overview", closed_port());
        let err = check_broker_at(&amqp, &management)
            .await
            .expect_err("no management API");
        assert!(matches!(err, PreflightError::Management { .. }), "{err:?}");
        assert!(err.to_string().contains("rabbitmq_management"), "{err}");
    }
}
