//! The TLS client configuration of the MQTT and webhook clients: rustls with aws-lc-rs (the
//! provider the AWS SDK already builds) trusting the system's certificates; `SSL_CERT_FILE` /
//! `SSL_CERT_DIR` point it at others (a private CA, a test CA).

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};

/// A client configuration trusting the system's (or `SSL_CERT_FILE`'s) certificates.
pub(crate) fn client_config() -> Result<Arc<ClientConfig>, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(format!(
            "no trusted certificates found (install ca-certificates or set SSL_CERT_FILE){}",
            if why.is_empty() {
                String::new()
            } else {
                format!(": {why}")
            }
        ));
    }
    for error in &found.errors {
        tracing::debug!(%error, "some system certificates could not be read");
    }
    config_with_roots(roots)
}

/// A client configuration trusting `roots` (empty: for plain-text connections only).
pub(crate) fn config_with_roots(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
