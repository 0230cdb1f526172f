//! Optional server TLS: tonic's rustls acceptor advertises ALPN `h2` (KEDA's
//! grpc-go client requires it); a client CA turns on client-certificate
//! verification (KEDA sends `tlsClientCert` from a TriggerAuthentication).

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::config::TlsFiles;

/// Errors loading the TLS files.
#[derive(Debug, thiserror::Error)]
#[error("cannot read TLS file `{path}`: {source}")]
pub struct TlsError {
    /// The file.
    pub path: String,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError {
        path: path.display().to_string(),
        source,
    })
}

/// Builds the server TLS configuration from PEM files.
pub fn server_config(files: &TlsFiles) -> Result<ServerTlsConfig, TlsError> {
    let identity = Identity::from_pem(read(&files.cert)?, read(&files.key)?);
    let mut config = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &files.client_ca {
        config = config
            .client_ca_root(Certificate::from_pem(read(ca)?))
            .client_auth_optional(false);
    }
    Ok(config)
}
