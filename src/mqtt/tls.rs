//! The rustls client configuration of an `mqtts://` link (cargo feature `mqtt-tls`): ring as
//! the crypto provider, the broker checked against `--mqtt-ca` or the system's CA store, and a
//! client certificate when `--mqtt-cert`/`--mqtt-key` are given. Every error names the file.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::MqttTls;

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {}: not PEM certificates ({e})", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {}: no `BEGIN CERTIFICATE` block in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// The configuration for `files`; `Err` says which file is wrong and how.
pub(super) fn client_config(files: &MqttTls) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match &files.ca {
        Some(ca) => {
            let (added, _) = roots.add_parsable_certificates(certificates(ca, "--mqtt-ca")?);
            if added == 0 {
                return Err(format!(
                    "--mqtt-ca {}: no certificate in it is a usable CA certificate",
                    ca.display()
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                log::warn!("mqtt: the system's CA certificates: {e}");
            }
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(
                    "no CA certificates on this system (Debian: the ca-certificates \
                            package) and no --mqtt-ca to check the broker with"
                        .into(),
                );
            }
        }
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots);
    let config = match (&files.cert, &files.key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = certificates(cert, "--mqtt-cert")?;
            let bytes = read(key, "--mqtt-key")?;
            let key_der = PrivateKeyDer::from_pem_slice(&bytes)
                .map_err(|e| format!("--mqtt-key {}: no private key in it ({e})", key.display()))?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                format!(
                    "--mqtt-cert {} with --mqtt-key {}: {e}",
                    cert.display(),
                    key.display()
                )
            })?
        }
        _ => return Err("--mqtt-cert and --mqtt-key go together".into()),
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_are_named_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("ca.pem");
        let e = client_config(&MqttTls {
            ca: Some(missing.clone()),
            ..MqttTls::default()
        })
        .unwrap_err();
        assert!(e.contains("--mqtt-ca") && e.contains("ca.pem"), "{e}");
        std::fs::write(&missing, b"not a certificate\n").unwrap();
        let e = client_config(&MqttTls {
            ca: Some(missing.clone()),
            ..MqttTls::default()
        })
        .unwrap_err();
        assert!(e.contains("BEGIN CERTIFICATE"), "{e}");
        let e = client_config(&MqttTls {
            cert: Some(missing),
            ..MqttTls::default()
        })
        .unwrap_err();
        assert!(e.contains("go together"), "{e}");
    }
}
