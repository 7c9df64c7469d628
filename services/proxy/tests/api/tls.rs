//! HTTPS: certificates made here (rcgen), chosen by SNI per vhost, the same engine
//! behind the handshake (streams, WebSocket upgrades), reload of certificates.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proxy::config::{Config, Policy, TlsFiles};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{Backend, config, vhost};

const PATIENCE: Duration = Duration::from_secs(5);

/// A self-signed certificate for `name`, written as PEM files in `dir`.
pub(crate) struct Issued {
    pub(crate) files: TlsFiles,
    pub(crate) der: CertificateDer<'static>,
}

pub(crate) fn issue(dir: &Path, name: &str) -> Issued {
    let made = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    let certificate = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&certificate, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    Issued { files: TlsFiles { certificate, key }, der: made.cert.der().clone() }
}

/// A proxy serving plain HTTP and HTTPS on 127.0.0.1:0.
pub(crate) struct TlsProxy {
    pub(crate) proxy: proxy::Proxy,
    pub(crate) plain: SocketAddr,
    pub(crate) tls: SocketAddr,
    pub(crate) _stop: tokio::sync::oneshot::Sender<()>,
}

impl TlsProxy {
    pub(crate) async fn start(config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (plain, tls) = (listener.local_addr().unwrap(), tls_listener.local_addr().unwrap());
        let proxy = proxy::Proxy::new(config).unwrap();
        assert!(proxy.serves_tls());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(proxy::serve_with_tls(listener, tls_listener, proxy.clone(), async move {
            let _ = stopped.await;
        }));
        Self { proxy, plain, tls, _stop: stop }
    }

    /// A TLS connection for HTTP/1.1 asking for `name`, trusting `roots`.
    pub(crate) async fn connect(&self, name: &str, roots: &[&CertificateDer<'static>]) -> TlsStream<TcpStream> {
        self.connect_alpn(name, roots, &[b"http/1.1"]).await
    }

    /// The same, offering these protocols by ALPN.
    pub(crate) async fn connect_alpn(
        &self,
        name: &str,
        roots: &[&CertificateDer<'static>],
        alpn: &[&[u8]],
    ) -> TlsStream<TcpStream> {
        let mut store = rustls::RootCertStore::empty();
        for root in roots {
            store.add((*root).clone()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
        client.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        let stream = TcpStream::connect(self.tls).await.unwrap();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        TlsConnector::from(Arc::new(client)).connect(name, stream).await.unwrap()
    }
}

fn served_certificate(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned()
}

/// One HTTP/1.1 request on the stream; the whole reply (the proxy is asked to close).
async fn request(stream: &mut TlsStream<TcpStream>, host: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut reply)).await.unwrap().unwrap();
    String::from_utf8_lossy(&reply).into_owned()
}

pub(crate) fn with_tls(mut config: Config, certificates: &[(&str, &Issued)]) -> Config {
    for (name, issued) in certificates {
        let block = config.vhosts.iter_mut().find(|vhost| vhost.name == *name).unwrap();
        block.tls = Some(issued.files.clone());
    }
    config
}

#[tokio::test]
async fn sni_picks_each_vhosts_certificate_and_the_request_goes_through_marked_https() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (issue(dir.path(), "a.test"), issue(dir.path(), "b.test"));
    let (backend_a, backend_b) = (Backend::start("ba").await, Backend::start("bb").await);
    let vhosts =
        vec![vhost("a.test", Policy::RoundRobin, &[&backend_a]), vhost("b.test", Policy::RoundRobin, &[&backend_b])];
    let fallback = issue(dir.path(), "other.test");
    let mut settings = with_tls(config(vhosts), &[("a.test", &a), ("b.test", &b)]);
    settings.tls.certificate = Some(fallback.files.certificate.clone());
    settings.tls.certificate_key = Some(fallback.files.key.clone());
    let proxy = TlsProxy::start(settings).await;

    let mut to_a = proxy.connect("a.test", &[&a.der, &b.der]).await;
    assert_eq!(served_certificate(&to_a), a.der);
    assert_eq!(to_a.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]), "HTTP/1.1 when the client asks for it");
    let both = proxy.connect_alpn("a.test", &[&a.der], &[b"h2", b"http/1.1"]).await;
    assert_eq!(both.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "HTTP/2 when the client can");
    let reply = request(&mut to_a, "a.test", "/headers").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("x-backend: ba"), "{reply}");
    assert!(reply.contains(r#""x-forwarded-proto":["https"]"#), "the backend learns the client came over TLS: {reply}");

    let mut to_b = proxy.connect("b.test", &[&a.der, &b.der]).await;
    assert_eq!(served_certificate(&to_b), b.der);
    assert!(request(&mut to_b, "b.test", "/").await.contains("x-backend: bb"));

    // A name without a certificate of its own gets the default one.
    let default = proxy.connect("other.test", &[&fallback.der]).await;
    assert_eq!(served_certificate(&default), fallback.der);

    // The plain listener still speaks plain HTTP.
    let plain = crate::helpers::raw_request(proxy.plain, "GET /headers HTTP/1.0\r\nHost: a.test\r\n\r\n").await;
    assert!(plain.contains(r#""x-forwarded-proto":["http"]"#), "{plain}");
    let _ = &proxy.proxy;
}

#[tokio::test]
async fn a_stream_and_a_websocket_work_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let site = issue(dir.path(), "chat.test");
    let backend = Backend::start("b").await;
    let proxy = TlsProxy::start(with_tls(
        config(vec![vhost("chat.test", Policy::Sticky, &[&backend])]),
        &[("chat.test", &site)],
    ))
    .await;
    let events = backend.sse_events();

    let mut stream = proxy.connect("chat.test", &[&site.der]).await;
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(b"GET /sse HTTP/1.1\r\nHost: chat.test\r\nAccept: text/event-stream\r\n\r\n").await.unwrap();
        let mut seen = String::new();
        for text in ["first", "second"] {
            events.send(text.to_owned()).await.unwrap();
            let wanted = format!("data: {text}\n\n");
            while !seen.contains(&wanted) {
                let mut chunk = [0u8; 4096];
                let read =
                    tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await.expect("event arrives").unwrap();
                assert!(read > 0, "the stream stays open: {seen}");
                seen.push_str(&String::from_utf8_lossy(&chunk[..read]));
            }
        }
    }

    let socket = proxy.connect("chat.test", &[&site.der]).await;
    let mut request = "wss://chat.test/ws".into_client_request().unwrap();
    request.headers_mut().insert("host", "chat.test".parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::client_async(request, socket).await.unwrap();
    assert_eq!(response.status(), 101);
    socket.send(Message::text("xin chào")).await.unwrap();
    let echoed = tokio::time::timeout(PATIENCE, socket.next()).await.expect("echo arrives").unwrap().unwrap();
    assert_eq!(echoed, Message::text("xin chào"));
}

#[tokio::test]
async fn a_reload_puts_new_certificates_in_force_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (issue(dir.path(), "site.test"), issue(&subdir(dir.path(), "new"), "site.test"));
    let backend = Backend::start("b").await;
    let base = config(vec![vhost("site.test", Policy::RoundRobin, &[&backend])]);
    let proxy = TlsProxy::start(with_tls(base.clone(), &[("site.test", &old)])).await;
    assert_eq!(served_certificate(&proxy.connect("site.test", &[&old.der]).await), old.der);

    // A key that is not the certificate's, and a file that is not there.
    let mismatched = Issued {
        files: TlsFiles { certificate: old.files.certificate.clone(), key: new.files.key.clone() },
        der: old.der.clone(),
    };
    let missing = Issued {
        files: TlsFiles { certificate: dir.path().join("nowhere.pem"), key: old.files.key.clone() },
        der: old.der.clone(),
    };
    for bad in [&mismatched, &missing] {
        let err = proxy.proxy.reload(&with_tls(base.clone(), &[("site.test", bad)])).await.unwrap_err();
        assert!(format!("{err:#}").contains("site.test"), "the error names the block: {err:#}");
        assert_eq!(served_certificate(&proxy.connect("site.test", &[&old.der]).await), old.der, "the old one serves");
    }

    proxy.proxy.reload(&with_tls(base, &[("site.test", &new)])).await.unwrap();
    assert_eq!(served_certificate(&proxy.connect("site.test", &[&new.der]).await), new.der);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_does_not_hold_others_up() {
    let dir = tempfile::tempdir().unwrap();
    let site = issue(dir.path(), "site.test");
    let backend = Backend::start("b").await;
    let mut settings =
        with_tls(config(vec![vhost("site.test", Policy::RoundRobin, &[&backend])]), &[("site.test", &site)]);
    settings.tls.handshake_timeout_ms = 200;
    let proxy = TlsProxy::start(settings).await;

    // Garbage, then silence.
    let mut idle = TcpStream::connect(proxy.tls).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut idle, b"\x16\x03\x01\x00").await.unwrap();
    let mut served = proxy.connect("site.test", &[&site.der]).await;
    assert!(request(&mut served, "site.test", "/").await.starts_with("HTTP/1.1 200"));
    // The silent one is closed once the handshake time is up.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, tokio::io::AsyncReadExt::read_to_end(&mut idle, &mut rest)).await;
    assert!(closed.is_ok(), "the proxy closed the connection whose handshake did not finish");
}

fn subdir(dir: &Path, name: &str) -> PathBuf {
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).unwrap();
    sub
}

#[tokio::test]
async fn a_block_for_the_plain_port_serves_the_same_name_on_the_https_port() {
    let dir = tempfile::tempdir().unwrap();
    let site = issue(dir.path(), "site.test");
    let backend = Backend::start("b").await;
    // As config/proxy.conf names its blocks: with the plain port (8080; HTTPS on 8443).
    let settings =
        with_tls(config(vec![vhost("site.test:8080", Policy::RoundRobin, &[&backend])]), &[("site.test:8080", &site)]);
    let proxy = TlsProxy::start(settings).await;
    let mut stream = proxy.connect("site.test", &[&site.der]).await;
    assert!(request(&mut stream, "site.test:8443", "/").await.contains("x-backend: b"));
    let mut stream = proxy.connect("site.test", &[&site.der]).await;
    assert!(request(&mut stream, "site.test:9999", "/").await.starts_with("HTTP/1.1 404"), "only the HTTPS port maps");
    // Over plain HTTP, the HTTPS port is just another port.
    let plain = crate::helpers::raw_request(proxy.plain, "GET / HTTP/1.0\r\nHost: site.test:8443\r\n\r\n").await;
    assert!(plain.starts_with("HTTP/1.0 404") || plain.starts_with("HTTP/1.1 404"), "{plain}");
}

#[tokio::test]
async fn a_vhost_can_send_plain_http_to_https_and_tell_browsers_to_stay() {
    let dir = tempfile::tempdir().unwrap();
    let site = issue(dir.path(), "site.test");
    let backend = Backend::start("b").await;
    let text = r#"host "site.test" { proxy_pass http://127.0.0.1:1; redirect_to_https; hsts 31536000; }"#;
    let mut block = proxy::Config::from_conf_str(text, "127.0.0.1").unwrap().vhosts.remove(0);
    block.upstreams = vec![backend.upstream()];
    let proxy = TlsProxy::start(with_tls(config(vec![block]), &[("site.test", &site)])).await;

    let plain =
        "POST /send-peer?x=1 HTTP/1.1\r\nHost: site.test:8080\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let reply = crate::helpers::raw_request(proxy.plain, plain).await;
    assert!(reply.starts_with("HTTP/1.1 308"), "{reply}");
    assert!(reply.contains("location: https://site.test:8443/send-peer?x=1\r\n"), "{reply}");
    assert!(!reply.contains("x-backend"), "the backend is not asked: {reply}");

    let mut stream = proxy.connect("site.test", &[&site.der]).await;
    let reply = request(&mut stream, "site.test", "/").await;
    assert!(reply.contains("x-backend: b"), "{reply}");
    assert!(reply.contains("strict-transport-security: max-age=31536000\r\n"), "{reply}");
}

#[tokio::test]
async fn a_development_certificate_is_made_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start("b").await;
    let mut settings = config(vec![vhost("chat.test:8080", Policy::RoundRobin, &[&backend])]);
    let (cert, key) = (dir.path().join("dev.pem"), dir.path().join("dev.key"));
    settings.tls.certificate = Some(cert.clone());
    settings.tls.certificate_key = Some(key.clone());
    settings.tls.self_signed = true;
    let proxy = TlsProxy::start(settings.clone()).await;
    let made = CertificateDer::from_pem_file(&cert).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600, "the key is private");
    for name in ["localhost", "tracker.localhost", "chat.test"] {
        assert_eq!(served_certificate(&proxy.connect(name, &[&made]).await), made, "{name}");
    }
    // A second start keeps it (a browser's exception lasts).
    let again = TlsProxy::start(settings).await;
    assert_eq!(served_certificate(&again.connect("localhost", &[&made]).await), made);
    assert_eq!(CertificateDer::from_pem_file(&cert).unwrap(), made);
}
