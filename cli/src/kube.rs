//! The cluster side of `safecity status --kube` and `safecity coldstart --kube`.

use anyhow::bail;

use crate::coldstart::ColdstartArgs;
use crate::status::{Row, StatusArgs};

/// `safecity status --kube`.
pub async fn status(_args: &StatusArgs) -> anyhow::Result<Vec<Row>> {
    bail!("--kube is not available in this build")
}

/// `safecity coldstart --kube`.
pub async fn coldstart(_args: &ColdstartArgs) -> anyhow::Result<()> {
    bail!("--kube is not available in this build")
}
