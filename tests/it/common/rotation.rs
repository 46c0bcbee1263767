//! TLS material on disk replaced the ways operators replace it, and a raw TLS client that holds
//! one connection and sends HTTP/1.1 requests on it.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{init, provider, ClientIdentity};

/// Writes `contents` to `path` as deploy tools do: into a temporary file beside it, then an
/// atomic rename over it (a reader sees the old file or the new one, never half of one).
pub fn replace_atomically(path: &Path, contents: impl AsRef<[u8]>) {
    let tmp = path.with_extension("tmp-new");
    std::fs::write(&tmp, contents).expect("write temp file");
    std::fs::rename(&tmp, path).expect("rename into place");
}

/// A Kubernetes secret volume as the kubelet writes it (and cert-manager renews it): the files
/// live in a timestamped directory `..2026_12_07_…`, `..data` is a symlink to the current one,
/// and each visible name (`tls.crt`) is a symlink to `..data/tls.crt`. An update writes a new
/// timestamped directory and swaps `..data` with one atomic rename of a new symlink.
#[cfg(unix)]
pub struct KubeSecretDir {
    pub dir: PathBuf,
    generation: u32,
}

#[cfg(unix)]
impl KubeSecretDir {
    /// A secret volume in `dir` (which must exist and be empty) with these files.
    pub fn new(dir: &Path, files: &[(&str, &[u8])]) -> KubeSecretDir {
        let mut secret = KubeSecretDir {
            dir: dir.to_owned(),
            generation: 0,
        };
        secret.update(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name))
                .expect("symlink file");
        }
        secret
    }

    /// The visible path of `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes a new timestamped directory with `files` and swaps `..data` to it atomically.
    pub fn update(&mut self, files: &[(&str, &[u8])]) {
        self.generation += 1;
        let stamp = format!(
            "..2026_12_07_10_00_{:02}.{}",
            self.generation,
            100 + self.generation
        );
        let target = self.dir.join(&stamp);
        std::fs::create_dir(&target).expect("create timestamped dir");
        for (name, contents) in files {
            std::fs::write(target.join(name), contents).expect("write secret file");
        }
        let tmp = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&stamp, &tmp).expect("symlink ..data_tmp");
        std::fs::rename(&tmp, self.dir.join("..data")).expect("swap ..data");
    }
}

/// A TLS client trusting `roots`, presenting `identity` if given, ALPN `http/1.1`.
pub fn raw_tls_client(
    roots: &[CertificateDer<'static>],
    identity: Option<&ClientIdentity>,
) -> TlsConnector {
    init();
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).expect("add trust anchor");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(store);
    let mut config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key())
            .expect("client auth cert"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// One TLS connection to the server, held open across requests.
pub struct HeldConnection {
    stream: TlsStream<TcpStream>,
}

impl HeldConnection {
    /// Connects and completes the handshake (as far as the client sees it: under TLS 1.3 the
    /// server's verdict on the client certificate arrives with the first read).
    pub async fn open(connector: &TlsConnector, addr: SocketAddr) -> io::Result<HeldConnection> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").expect("server name");
        let stream = connector.connect(name, tcp).await?;
        Ok(HeldConnection { stream })
    }

    /// The server's leaf certificate on this connection.
    pub fn server_leaf(&self) -> CertificateDer<'static> {
        let (_, session) = self.stream.get_ref();
        session.peer_certificates().expect("server certificates")[0]
            .clone()
            .into_owned()
    }

    /// `GET path` over this connection (keep-alive): the status code and the body, or the error
    /// (a TLS alert from the server among them).
    pub async fn get(&mut self, path: &str) -> io::Result<(u16, String)> {
        let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
        self.stream.write_all(request.as_bytes()).await?;
        self.stream.flush().await?;
        let mut buf = Vec::new();
        loop {
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(response) = parse_response(&buf) {
                return Ok(response);
            }
        }
    }
}

/// A complete HTTP/1.1 response with a content-length in `buf`, if there is one.
fn parse_response(buf: &[u8]) -> Option<(u16, String)> {
    let text = std::str::from_utf8(buf).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.get(9..12)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    (body.len() >= length).then(|| (status, body[..length].to_owned()))
}

/// The TLS alert the server sent, if `error` is one.
pub fn alert_of(error: &io::Error) -> Option<rustls::AlertDescription> {
    match error.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

/// A generous upper bound for what must happen; never a measured duration.
const SAFETY: Duration = Duration::from_secs(20);

/// Connects with `identity` and asserts the server refuses it at the TLS layer: returns the
/// alert. Under TLS 1.3 the client's side of the handshake ends before the server has checked
/// the client certificate; the verdict is the first thing the client reads (it writes nothing,
/// so the server's close carries no reset that could overtake the alert).
pub async fn expect_refused(
    addr: SocketAddr,
    roots: &[CertificateDer<'static>],
    identity: Option<&ClientIdentity>,
) -> rustls::AlertDescription {
    let connector = raw_tls_client(roots, identity);
    let error = match HeldConnection::open(&connector, addr).await {
        Err(e) => e,
        Ok(mut conn) => {
            let mut byte = [0u8; 1];
            match tokio::time::timeout(SAFETY, conn.stream.read(&mut byte)).await {
                Err(_) => panic!("the server did not refuse the client certificate"),
                Ok(Ok(n)) => panic!("the server sent {n} bytes instead of refusing"),
                Ok(Err(e)) => e,
            }
        }
    };
    alert_of(&error).unwrap_or_else(|| panic!("not a TLS alert: {error}"))
}

/// Connects with `identity`, asserts `GET /` is answered `200`, and returns the connection
/// (still open) and the body.
pub async fn expect_served(
    addr: SocketAddr,
    roots: &[CertificateDer<'static>],
    identity: Option<&ClientIdentity>,
) -> (HeldConnection, String) {
    let connector = raw_tls_client(roots, identity);
    let mut conn = HeldConnection::open(&connector, addr)
        .await
        .expect("handshake");
    let (status, body) = tokio::time::timeout(SAFETY, conn.get("/"))
        .await
        .expect("an answer in time")
        .expect("served");
    assert_eq!(status, 200, "{body}");
    (conn, body)
}

/// A fresh empty scratch directory under the system's temporary directory.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("certbound-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}
