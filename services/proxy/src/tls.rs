//! TLS termination: the certificates (one per vhost, chosen by the name the client
//! asks for with SNI, and a default for the rest), the rustls server configuration,
//! and the handshake. Behind the handshake a TLS connection is served by the same
//! HTTP/1.1 engine as a plain one ([`crate::stream::ClientStream`]).
//!
//! Certificates come from PEM files: `tls_certificate` and `tls_certificate_key` in a
//! `host` block of `proxy.conf`, and `tls.certificate` / `tls.certificate_key` for the
//! default. They are read at start and on every reload; a reload with a file that is
//! missing, unreadable or does not match its key is refused, and the certificates in
//! force keep serving.
//!
//! Protocols and suites are rustls's: TLS 1.3 and 1.2, AEAD suites with forward
//! secrecy only (no CBC, no RSA key exchange, no SSL or TLS 1.0/1.1). Sessions
//! resume by ticket (TLS 1.2 and 1.3) or by id from a shared in-memory cache.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;

use crate::config::Config;
use crate::routing::split_host_port;

/// Sessions kept for resumption by id, shared by every worker.
const SESSION_CACHE: usize = 16 * 1024;

/// The certificates in force: by server name, and the default.
#[derive(Debug, Default)]
pub(crate) struct Certificates {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Reads every certificate `config` names. `None` when it names none (TLS off).
    pub(crate) fn load(config: &Config) -> Result<Option<Self>, String> {
        let provider = provider();
        // A pair named by several blocks is read once, and is one certificate.
        let mut loaded: HashMap<(PathBuf, PathBuf), Arc<CertifiedKey>> = HashMap::new();
        let mut read = |cert: &Path, key: &Path| -> Result<Arc<CertifiedKey>, String> {
            let pair = (cert.to_path_buf(), key.to_path_buf());
            if let Some(done) = loaded.get(&pair) {
                return Ok(done.clone());
            }
            let certified = Arc::new(read_pair(cert, key, &provider)?);
            loaded.insert(pair, certified.clone());
            Ok(certified)
        };
        let mut certificates = Self::default();
        let mut first = None;
        for vhost in &config.vhosts {
            let Some(files) = &vhost.tls else { continue };
            let certified =
                read(&files.certificate, &files.key).map_err(|err| format!("host \"{}\": {err}", vhost.name))?;
            let (name, _) = split_host_port(&vhost.name);
            let name = name.trim_start_matches('[').trim_end_matches(']').to_owned();
            if let Some(other) = certificates.by_name.get(&name)
                && !Arc::ptr_eq(other, &certified)
            {
                return Err(format!("host \"{}\": another block for {name} names another certificate", vhost.name));
            }
            if vhost.default {
                certificates.default = Some(certified.clone());
            }
            first.get_or_insert_with(|| certified.clone());
            certificates.by_name.insert(name, certified);
        }
        if let (Some(cert), Some(key)) = (&config.tls.certificate, &config.tls.certificate_key) {
            certificates.default = Some(read(cert, key).map_err(|err| format!("tls.certificate: {err}"))?);
        } else if config.tls.certificate.is_some() || config.tls.certificate_key.is_some() {
            return Err("tls.certificate and tls.certificate_key go together: set both or neither".to_owned());
        }
        if certificates.default.is_none() {
            certificates.default = first;
        }
        Ok(certificates.default.is_some().then_some(certificates))
    }

    fn resolve(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let by_name = server_name.and_then(|name| self.by_name.get(&name.to_ascii_lowercase()));
        by_name.or(self.default.as_ref()).cloned()
    }
}

/// Chooses a certificate by SNI; swapped whole on reload.
#[derive(Debug)]
pub(crate) struct Resolver(ArcSwap<Certificates>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.load().resolve(hello.server_name())
    }
}

/// What TLS needs at run time: the server configuration every handshake uses, and
/// its resolver, whose certificates a reload replaces.
#[derive(Clone)]
pub struct Tls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    resolver: Arc<Resolver>,
}

impl Tls {
    /// `http2`: ALPN offers `h2` first, then `http/1.1`.
    pub(crate) fn new(certificates: Certificates, http2: bool) -> anyhow::Result<Self> {
        let resolver = Arc::new(Resolver(ArcSwap::from_pointee(certificates)));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
        config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
        config.alpn_protocols =
            if http2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
        Ok(Self { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)), resolver })
    }

    /// Puts new certificates in force for the handshakes that follow.
    pub(crate) fn replace(&self, certificates: Certificates) {
        self.resolver.0.store(Arc::new(certificates));
    }
}

/// Writes a self-signed certificate and its key to `tls.certificate` and
/// `tls.certificate_key` when neither file exists yet: for `localhost`, its
/// subdomains the shipped configurations use, `127.0.0.1`, and every vhost's name.
/// Development only (`tls.self_signed`); kept, so a browser's exception lasts.
pub(crate) fn make_self_signed(config: &Config) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (Some(cert), Some(key)) = (&config.tls.certificate, &config.tls.certificate_key) else {
        anyhow::bail!("tls.self_signed needs tls.certificate and tls.certificate_key: where to keep it");
    };
    if cert.exists() || key.exists() {
        return Ok(());
    }
    let mut names: Vec<String> =
        ["localhost", "tracker.localhost", "auth.localhost", "127.0.0.1"].map(str::to_owned).to_vec();
    for vhost in &config.vhosts {
        let (name, _) = split_host_port(&vhost.name);
        if !names.iter().any(|known| known == name) {
            names.push(name.to_owned());
        }
    }
    let made = rcgen::generate_simple_self_signed(names.clone())?;
    // The key first, readable by this user alone; each written whole or not at all.
    for (path, text, mode) in [(key, made.signing_key.serialize_pem(), 0o600), (cert, made.cert.pem(), 0o644)] {
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
    }
    tracing::warn!(
        certificate = %cert.display(),
        ?names,
        "made a self-signed development certificate: browsers will warn; give real certificate files for real users"
    );
    Ok(())
}

fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// Reads a certificate chain and its private key, and checks that they match.
fn read_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| format!("cannot read the certificate {}: {err}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no certificate (expected PEM `BEGIN CERTIFICATE`)", cert.display()));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|err| format!("cannot read the key {}: {err}", key.display()))?;
    // Refuses a key that does not match the certificate.
    CertifiedKey::from_der(chain, private, provider)
        .map_err(|err| format!("{} and {}: {err}", cert.display(), key.display()))
}
