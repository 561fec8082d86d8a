//! TLS for a database location, as the URL's `sslmode` and `sslrootcert`
//! ask, with libpq's meanings (the driver itself knows only `disable`,
//! `prefer` and `require`, and no root certificates):
//!
//! - `disable`: no TLS;
//! - `prefer` (the default) and `allow`: TLS if the server offers it,
//!   without checking its certificate;
//! - `require`: TLS, without checking the certificate unless
//!   `sslrootcert` names roots (then as `verify-ca`);
//! - `verify-ca`: the certificate must chain to the roots;
//! - `verify-full`: and name the host.
//!
//! The roots are the PEM file `sslrootcert` names, `~/.postgresql/root.crt`
//! when it names none, or the Mozilla roots for `sslrootcert=system`.
//!
//! A client certificate (for a server that signs users in by certificate)
//! is the PEM file `sslcert` names, with its key in `sslkey`; without
//! them, `~/.postgresql/postgresql.crt` and `.key` if they exist, as libpq
//! does. Like libpq, a key that others may read is refused.
//!
//! rustls does the TLS (with ring: no system library needed).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

/// What a URL asks of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    mode: Mode,
    roots: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Wanted {
    /// Takes `sslmode`, `sslrootcert`, `sslcert` and `sslkey` out of
    /// `url`'s query, and gives back the URL the driver understands with
    /// what they ask.
    pub fn split(url: &str) -> Result<(String, Wanted), String> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut mode = Mode::Prefer;
        let mut roots = None;
        let (mut cert, mut key) = (None, None);
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "sslmode" => {
                    mode = match value {
                        "disable" => Mode::Disable,
                        "allow" | "prefer" => Mode::Prefer,
                        "require" => Mode::Require,
                        "verify-ca" => Mode::VerifyCa,
                        "verify-full" => Mode::VerifyFull,
                        other => {
                            return Err(format!(
                                "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                            ));
                        }
                    }
                }
                "sslrootcert" => roots = Some(percent_decoded(value)),
                "sslcert" => cert = Some(percent_decoded(value)),
                "sslkey" => key = Some(percent_decoded(value)),
                _ => kept.push(pair),
            }
        }
        if mode == Mode::Require && roots.is_some() {
            mode = Mode::VerifyCa;
        }
        let driver = match mode {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => "require",
        };
        kept.push(match driver {
            "disable" => "sslmode=disable",
            "prefer" => "sslmode=prefer",
            _ => "sslmode=require",
        });
        let wanted = Wanted {
            mode,
            roots,
            cert,
            key,
        };
        Ok((format!("{base}?{}", kept.join("&")), wanted))
    }

    /// Whether to offer TLS at all.
    pub fn wants_tls(&self) -> bool {
        self.mode != Mode::Disable
    }

    /// The rustls configuration that checks the server as asked.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let verifier: Arc<dyn ServerCertVerifier> = match self.mode {
            Mode::Disable | Mode::Prefer | Mode::Require => {
                Arc::new(Unchecked(provider.signature_verification_algorithms))
            }
            Mode::VerifyCa | Mode::VerifyFull => {
                let full =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(self.roots()?), provider)
                        .build()
                        .map_err(|e| e.to_string())?;
                if self.mode == Mode::VerifyFull {
                    full
                } else {
                    Arc::new(ChainOnly(full))
                }
            }
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        match self.client_identity()? {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("the client certificate and key do not go together: {e}")),
            None => Ok(builder.with_no_client_auth()),
        }
    }

    /// The client certificate's chain and key, if there is one: named by
    /// the URL (then it must be readable), else libpq's default files if
    /// the certificate exists.
    fn client_identity(
        &self,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, String> {
        let home = || std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".postgresql"));
        let cert = match &self.cert {
            Some(file) => PathBuf::from(file),
            None => match home().map(|dir| dir.join("postgresql.crt")) {
                Some(file) if file.exists() => file,
                _ => return Ok(None),
            },
        };
        let key = match &self.key {
            Some(file) => PathBuf::from(file),
            None => home()
                .map(|dir| dir.join("postgresql.key"))
                .ok_or("no home directory for ~/.postgresql/postgresql.key")?,
        };
        let unreadable = |what: &str, file: &PathBuf, e: &dyn std::fmt::Display| {
            format!("cannot read the client {what} {}: {e}", file.display())
        };
        let chain = CertificateDer::pem_file_iter(&cert)
            .map_err(|e| unreadable("certificate", &cert, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unreadable("certificate", &cert, &e))?;
        if chain.is_empty() {
            return Err(format!("{} holds no certificate", cert.display()));
        }
        let meta = std::fs::metadata(&key).map_err(|e| unreadable("key", &key, &e))?;
        if !meta.is_file() {
            // A pipe or a device would be read until it ends, or forever.
            return Err(format!("the client key {} is not a file", key.display()));
        }
        // As libpq: the owner's alone, or also its group's to read when
        // root owns it (a key the system manages for a group of users).
        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
        let loose = match std::os::unix::fs::MetadataExt::uid(&meta) {
            0 => 0o037,
            _ => 0o077,
        };
        if mode & loose != 0 {
            return Err(format!(
                "the client key {} may be read by others: allow its owner alone (chmod 600)",
                key.display()
            ));
        }
        let secret = PrivateKeyDer::from_pem_file(&key).map_err(|e| unreadable("key", &key, &e))?;
        Ok(Some((chain, secret)))
    }

    fn roots(&self) -> Result<RootCertStore, String> {
        let mut store = RootCertStore::empty();
        let file = match self.roots.as_deref() {
            Some("system") => {
                store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                return Ok(store);
            }
            Some(file) => PathBuf::from(file),
            None => std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".postgresql/root.crt"))
                .ok_or("no sslrootcert and no home directory for ~/.postgresql/root.crt")?,
        };
        let certs = CertificateDer::pem_file_iter(&file)
            .map_err(|e| format!("cannot read the root certificates {}: {e}", file.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{}: {e}", file.display()))?;
            store
                .add(cert)
                .map_err(|e| format!("{}: {e}", file.display()))?;
        }
        if store.is_empty() {
            return Err(format!("{} holds no certificate", file.display()));
        }
        Ok(store)
    }
}

/// `%XX` escapes decoded (a path in a URL has its `/` as `%2F`).
pub(super) fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq's `prefer` and `require`: encrypted, but the certificate is not
/// checked (its signature over the handshake still is).
#[derive(Debug)]
struct Unchecked(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca`: the chain to the roots is checked, the host name is not.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
                ..
            })) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_modes_become_the_drivers_with_what_they_ask() {
        let (url, wanted) =
            Wanted::split("postgresql://h/db?sslmode=verify-full&connect_timeout=3").expect("ok");
        assert_eq!(url, "postgresql://h/db?connect_timeout=3&sslmode=require");
        assert_eq!(wanted.mode, Mode::VerifyFull);
        let (url, wanted) = Wanted::split("postgresql://h/db").expect("ok");
        assert_eq!(url, "postgresql://h/db?sslmode=prefer");
        assert!(wanted.wants_tls());
        let (_, wanted) =
            Wanted::split("postgresql://h/db?sslmode=require&sslrootcert=%2Ftmp%2Fca.pem")
                .expect("ok");
        assert_eq!(wanted.mode, Mode::VerifyCa);
        assert_eq!(wanted.roots.as_deref(), Some("/tmp/ca.pem"));
        assert!(
            !Wanted::split("postgresql://h/db?sslmode=disable")
                .expect("ok")
                .1
                .wants_tls()
        );
        assert!(Wanted::split("postgresql://h/db?sslmode=sometimes").is_err());
        let (url, wanted) =
            Wanted::split("postgresql://h/db?sslcert=%2Fc.pem&sslkey=%2Fc.key&sslmode=verify-ca")
                .expect("ok");
        assert_eq!(url, "postgresql://h/db?sslmode=require");
        assert_eq!(
            (wanted.cert.as_deref(), wanted.key.as_deref()),
            (Some("/c.pem"), Some("/c.key"))
        );
    }
}
