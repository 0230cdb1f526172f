//! `safecity webhook-sink`: the local city's outbox, a signed-webhook
//! receiver that prints each post ([`safecity_social::receiver`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Args;
use safecity_shell::env::{Env, process_env};
use safecity_social::receiver::{Echo, WebhookReceiver, serve};
use tokio::net::TcpListener;

/// Options of `safecity webhook-sink`.
#[derive(Debug, Args)]
pub struct WebhookSinkArgs {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8790")]
    pub addr: SocketAddr,
    /// HMAC key the notifier signs with.
    #[arg(long, env = "SAFECITY_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// A file holding the HMAC key (used when --secret is not given).
    #[arg(long, env = "SAFECITY_WEBHOOK_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
}

impl WebhookSinkArgs {
    /// The HMAC key, from `--secret` or the secret file.
    pub fn key(&self) -> anyhow::Result<Vec<u8>> {
        let file = self.secret_file.as_ref().map(|p| p.display().to_string());
        let lookup = |name: &str| match name {
            "SECRET" => self.secret.clone(),
            "SECRET_FILE" => file.clone(),
            _ => process_env(name),
        };
        match Env::new(&lookup).secret("SECRET", "SECRET_FILE") {
            Ok(Some(key)) => Ok(key.into_bytes()),
            Ok(None) => bail!(
                "the webhook secret is required: pass --secret, or set SAFECITY_WEBHOOK_SECRET or SAFECITY_WEBHOOK_SECRET_FILE"
            ),
            Err(error) => bail!("--secret-file: {}", error.reason),
        }
    }
}

/// Serves until SIGTERM/SIGINT, then prints the counts.
pub async fn run(args: WebhookSinkArgs) -> anyhow::Result<()> {
    let receiver = Arc::new(WebhookReceiver::new(args.key()?, Echo::Stdout));
    let listener = TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    println!("webhook-sink: listening on http://{addr}/ (posts must be signed)");
    let cancel = safecity_shell::signals::on_signals();
    serve(listener, receiver.clone(), cancel.cancelled_owned())
        .await
        .context("serving webhooks")?;
    let stats = receiver.stats();
    println!(
        "webhook-sink: stopped; {} post(s), {} replay(s) answered without posting, {} rejected",
        stats.posts, stats.replays, stats.rejected
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_comes_from_the_flag_or_a_file() {
        let args = |secret: Option<&str>, file: Option<PathBuf>| WebhookSinkArgs {
            addr: "127.0.0.1:0".parse().expect("addr"),
            secret: secret.map(str::to_owned),
            secret_file: file,
        };
        assert_eq!(args(Some("s"), None).key().expect("flag"), b"s");
        let missing = args(None, None).key().expect_err("no secret");
        assert!(missing.to_string().contains("required"), "{missing}");
        let dir = std::env::temp_dir().join(format!("safecity-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("secret");
        std::fs::write(&path, "from-file\n").expect("write");
        assert_eq!(
            args(None, Some(path.clone())).key().expect("file"),
            b"from-file"
        );
        std::fs::write(&path, "  \n").expect("write");
        let err = args(None, Some(path)).key().expect_err("empty");
        assert!(err.to_string().contains("is empty"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
