//! The city's processes: spawned with their environment and a log file,
//! watched for readiness over HTTP, stopped with SIGTERM (they drain) and
//! killed only if they overstay the grace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// A name for logs and the view, e.g. `map-pin-2`.
    pub name: String,
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment added to a clean one (PATH, HOME kept).
    pub env: BTreeMap<String, String>,
    /// `http://127.0.0.1:<port>`: where `/readyz` and `/metrics` answer, if any.
    pub ops_url: Option<String>,
}

/// Why a process could not be started or readied.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started.
    #[error("starting {name} ({program}): {source}")]
    Spawn {
        /// The process name.
        name: String,
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The log file could not be created.
    #[error("log file {path}: {source}")]
    Log {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It exited before becoming ready.
    #[error("{name} exited ({status}) before it was ready; its log: {log}")]
    Exited {
        /// The process name.
        name: String,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: String,
    },
    /// It did not become ready in time.
    #[error("{name} was not ready within {seconds} s; its log: {log}")]
    NotReady {
        /// The process name.
        name: String,
        /// The wait.
        seconds: u64,
        /// Its log file.
        log: String,
    },
}

/// A running child process.
#[derive(Debug)]
pub struct Process {
    /// What it runs.
    pub spec: Spec,
    /// Its log file.
    pub log: PathBuf,
    /// When it was spawned.
    pub started: Instant,
    child: Child,
}

/// The environment variables a child keeps from ours.
const INHERITED: [&str; 5] = ["PATH", "HOME", "TMPDIR", "LANG", "RUST_BACKTRACE"];

impl Process {
    /// Spawns `spec`, its stdout and stderr appended to `<logs>/<name>.log`.
    pub fn spawn(spec: Spec, logs: &Path) -> Result<Self, ProcessError> {
        let log = logs.join(format!("{}.log", spec.name));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|source| ProcessError::Log {
                path: log.display().to_string(),
                source,
            })?;
        let err = file.try_clone().map_err(|source| ProcessError::Log {
            path: log.display().to_string(),
            source,
        })?;
        let mut command = Command::new(&spec.program);
        command
            .args(&spec.args)
            .env_clear()
            .envs(
                INHERITED
                    .iter()
                    .filter_map(|k| std::env::var(k).ok().map(|v| (*k, v))),
            )
            .env("NO_COLOR", "1")
            .envs(&spec.env)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .kill_on_drop(true);
        let child = command.spawn().map_err(|source| ProcessError::Spawn {
            name: spec.name.clone(),
            program: spec.program.display().to_string(),
            source,
        })?;
        Ok(Process {
            spec,
            log,
            started: Instant::now(),
            child,
        })
    }

    /// The OS process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether it exited, with its status.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(error) => Some(error.to_string()),
        }
    }

    /// Waits until `GET <ops_url><path>` answers 200 (or the process exits).
    pub async fn ready(
        &mut self,
        http: &reqwest::Client,
        path: &str,
        timeout: Duration,
    ) -> Result<Duration, ProcessError> {
        let Some(url) = self.spec.ops_url.clone() else {
            return Ok(self.started.elapsed());
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Err(ProcessError::Exited {
                    name: self.spec.name.clone(),
                    status,
                    log: self.log.display().to_string(),
                });
            }
            let answered = http
                .get(format!("{url}{path}"))
                .timeout(Duration::from_millis(500))
                .send()
                .await;
            if answered.is_ok_and(|r| r.status().is_success()) {
                return Ok(self.started.elapsed());
            }
            if Instant::now() > deadline {
                return Err(ProcessError::NotReady {
                    name: self.spec.name.clone(),
                    seconds: timeout.as_secs(),
                    log: self.log.display().to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        if let Some(pid) = self.pid().and_then(|p| i32::try_from(p).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }

    /// Sends SIGKILL (a crash, for fault runs).
    pub fn kill(&self) {
        if let Some(pid) = self.pid().and_then(|p| i32::try_from(p).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

    /// SIGTERM, then waits up to `grace` for the exit (SIGKILL after it);
    /// returns the exit status.
    pub async fn stop(mut self, grace: Duration) -> String {
        self.terminate();
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            Ok(Err(error)) => error.to_string(),
            Err(_) => {
                let _ = self.child.kill().await;
                format!("killed after {} s", grace.as_secs())
            }
        }
    }
}

/// A free TCP port on loopback (bound, then released for a child).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
