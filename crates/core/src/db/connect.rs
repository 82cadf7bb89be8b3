//! Opening one PostgreSQL connection: TLS as `sslmode` asks, and the statement cache setting.
//!
//! `DATABASE_URL` takes libpq's `sslmode` and `sslrootcert` query parameters:
//!
//! | `sslmode` | TLS | the server's certificate |
//! | --- | --- | --- |
//! | `disable` | never | — |
//! | `prefer` (default) | when the server offers it | not checked |
//! | `require` | always | not checked; checked as `verify-ca` when `sslrootcert` is given (as libpq) |
//! | `verify-ca` | always | signed by a trusted CA |
//! | `verify-full` | always | signed by a trusted CA and issued for the host connected to |
//!
//! The trusted CAs are those of the PEM file `sslrootcert` names, else (or with
//! `sslrootcert=system`) the system's store and the webpki roots. TLS is rustls with the ring
//! provider; errors name their cause (certificate not trusted, host name mismatch, server does not
//! support TLS).

use std::path::PathBuf;
use std::sync::Arc;

use diesel::connection::CacheSize;
use diesel::ConnectionError;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures::future::BoxFuture;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_postgres::config::SslMode as WireSslMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::pooler::Unnamed;

/// libpq's `sslmode` values llmflow understands (`allow` is not offered: it is `prefer` reversed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, ConnectionError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(ConnectionError::InvalidConnectionUrl(format!(
                "sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
            )))
            }
        })
    }
}

/// How each connection of a pool is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Keep statements prepared on the connection between queries. Off behind a transaction-mode
    /// pooler (PgBouncer, Supavisor), where the next query may run on another server connection.
    pub statement_cache: bool,
    /// `SET enable_seqscan = off` on each connection, for a process whose every query is meant
    /// to reach its rows through an index (the worker and the webhook sender; the plan audit
    /// checks their queries). Their hot statements stay prepared, and a prepared statement's
    /// generic plan made while a table is new and small (before its first `ANALYZE`) is a
    /// sequential scan that stays on the connection as the table grows: hundreds of rows read
    /// per job until autovacuum analyses the table (BENCHMARKS.md, issue 18's targets, (b)).
    /// Applied only with the statement cache on: behind a transaction-mode pooler a session
    /// setting would reach other clients' sessions, and there every statement is planned
    /// afresh anyway.
    pub avoid_seq_scans: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            statement_cache: true,
            avoid_seq_scans: false,
        }
    }
}

impl ConnectOptions {
    /// The options for `url` with the `DATABASE_STATEMENT_CACHE` setting: when it is not set,
    /// the cache is off on port 6543 (Supabase's transaction-mode pooler) and on elsewhere.
    pub fn for_url(url: &str, statement_cache: Option<bool>) -> ConnectOptions {
        ConnectOptions {
            statement_cache: statement_cache
                .unwrap_or(url_port(url) != Some(TRANSACTION_POOLER_PORT)),
            avoid_seq_scans: false,
        }
    }

    /// These options with [`ConnectOptions::avoid_seq_scans`] on.
    pub fn avoiding_seq_scans(self) -> ConnectOptions {
        ConnectOptions {
            avoid_seq_scans: true,
            ..self
        }
    }
}

/// The session setting of [`ConnectOptions::avoid_seq_scans`].
pub const AVOID_SEQ_SCANS: &str = "SET enable_seqscan = off";

/// `DATABASE_URL` taken apart: what tokio-postgres is given, and the TLS settings it does not know.
#[derive(Debug)]
struct Target {
    config: tokio_postgres::Config,
    mode: SslMode,
    root_cert: Option<PathBuf>,
}

/// The port of Supabase's transaction-mode pooler.
pub const TRANSACTION_POOLER_PORT: u16 = 6543;

/// The port `url` names, when it names one (URL or `key=value` form).
pub fn url_port(url: &str) -> Option<u16> {
    if url.contains("://") {
        return url::Url::parse(url).ok()?.port();
    }
    let config: tokio_postgres::Config = url.parse().ok()?;
    config.get_ports().first().copied()
}

fn parse_target(database_url: &str) -> Result<Target, ConnectionError> {
    let invalid = |e: &dyn std::fmt::Display| {
        ConnectionError::InvalidConnectionUrl(format!("DATABASE_URL is not valid: {e}"))
    };
    if !database_url.contains("://") {
        // libpq's `key=value` form: tokio-postgres reads it, with its own three sslmodes.
        let config: tokio_postgres::Config = database_url.parse().map_err(|e| invalid(&e))?;
        let mode = match config.get_ssl_mode() {
            WireSslMode::Disable => SslMode::Disable,
            WireSslMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        };
        return Ok(Target {
            config,
            mode,
            root_cert: None,
        });
    }
    let mut url = url::Url::parse(database_url).map_err(|e| invalid(&e))?;
    let mut mode = SslMode::Prefer;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "sslmode" => mode = SslMode::parse(&value)?,
            "sslrootcert" if value != "system" => root_cert = Some(PathBuf::from(value.as_ref())),
            "sslrootcert" => root_cert = None,
            _ => kept.push((key.into_owned(), value.into_owned())),
        }
    }
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    let mut config: tokio_postgres::Config = url.as_str().parse().map_err(|e| invalid(&e))?;
    config.ssl_mode(match mode {
        SslMode::Disable => WireSslMode::Disable,
        SslMode::Prefer => WireSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireSslMode::Require,
    });
    Ok(Target {
        config,
        mode,
        root_cert,
    })
}

/// Opens one connection to `database_url` (see the module docs for `sslmode`).
pub async fn establish(
    database_url: &str,
    options: ConnectOptions,
) -> Result<AsyncPgConnection, ConnectionError> {
    let target = parse_target(database_url)?;
    let tls = tls_config(target.mode, target.root_cert.as_ref())?;
    if !options.statement_cache {
        let mut conn = establish_unnamed(&target, tls).await?;
        conn.set_prepared_statement_cache_size(CacheSize::Disabled);
        return Ok(conn);
    }
    let (client, connection) = target
        .config
        .connect(MakeRustlsConnect::new(tls))
        .await
        .map_err(|e| ConnectionError::BadConnection(describe(&e, &target)))?;
    let mut conn = AsyncPgConnection::try_from_client_and_connection(client, connection).await?;
    if options.avoid_seq_scans {
        conn.batch_execute(AVOID_SEQ_SCANS)
            .await
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
    }
    Ok(conn)
}

/// A connection whose statements are sent unnamed (see [`super::pooler`]): the socket is opened
/// here so that the rewriting stream can sit under tokio-postgres (and over TLS).
async fn establish_unnamed(
    target: &Target,
    tls: ClientConfig,
) -> Result<AsyncPgConnection, ConnectionError> {
    let config = &target.config;
    let ports = config.get_ports();
    let mut failure = String::from("DATABASE_URL names no TCP host");
    for (i, host) in config.get_hosts().iter().enumerate() {
        let tokio_postgres::config::Host::Tcp(name) = host else {
            failure = "a Unix socket cannot be used with DATABASE_STATEMENT_CACHE=false".into();
            continue;
        };
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let connecting = TcpStream::connect((name.as_str(), port));
        let tcp = match config.get_connect_timeout() {
            Some(limit) => tokio::time::timeout(*limit, connecting)
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())),
            None => connecting.await,
        };
        let tcp = match tcp {
            Ok(tcp) => tcp,
            Err(e) => {
                failure = format!("cannot reach {name}:{port}: {e}");
                continue;
            }
        };
        // Nagle would hold the small requests back; keepalives as tokio-postgres sets them.
        let _ = tcp.set_nodelay(true);
        if config.get_keepalives() {
            let mut keepalive =
                socket2::TcpKeepalive::new().with_time(config.get_keepalives_idle());
            if let Some(interval) = config.get_keepalives_interval() {
                keepalive = keepalive.with_interval(interval);
            }
            if let Some(retries) = config.get_keepalives_retries() {
                keepalive = keepalive.with_retries(retries);
            }
            let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
        }
        let mut make = MakeRustlsConnect::new(tls.clone());
        let connector =
            match MakeTlsConnect::<Unnamed<TcpStream>>::make_tls_connect(&mut make, name) {
                Ok(connector) => UnnamedTls(connector),
                Err(never) => match never {},
            };
        let (client, connection) = config
            .connect_raw(Unnamed::new(tcp), connector)
            .await
            .map_err(|e| ConnectionError::BadConnection(describe(&e, target)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "a PostgreSQL connection ended with an error");
            }
        });
        return AsyncPgConnection::try_from(client).await;
    }
    Err(ConnectionError::BadConnection(failure))
}

/// TLS under the rewriting stream: the socket's stream relays the TLS bytes untouched, and a
/// new rewriting stream works inside the TLS session.
struct UnnamedTls<T>(T);

impl<T> TlsConnect<Unnamed<TcpStream>> for UnnamedTls<T>
where
    T: TlsConnect<Unnamed<TcpStream>> + Send + 'static,
    T::Future: Send + 'static,
    T::Stream: Send,
{
    type Stream = Unnamed<T::Stream>;
    type Error = T::Error;
    type Future = BoxFuture<'static, Result<Unnamed<T::Stream>, T::Error>>;

    fn connect(self, stream: Unnamed<TcpStream>) -> Self::Future {
        let handshake = self.0.connect(stream.into_passthrough());
        Box::pin(async move { Ok(Unnamed::new(handshake.await?)) })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config(mode: SslMode, root_cert: Option<&PathBuf>) -> Result<ClientConfig, ConnectionError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectionError::BadConnection(format!("TLS setup failed: {e}")))?;
    let check = match (mode, root_cert) {
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => Check::Nothing,
        (SslMode::Require | SslMode::VerifyCa, _) => Check::Chain,
        (SslMode::VerifyFull, _) => Check::ChainAndName,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        Check::Nothing => Arc::new(AnyCertificate(provider)),
        Check::Chain | Check::ChainAndName => {
            let roots = Arc::new(root_store(root_cert)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                .build()
                .map_err(|e| ConnectionError::BadConnection(format!("TLS setup failed: {e}")))?;
            if check == Check::Chain {
                Arc::new(ChainOnly(webpki))
            } else {
                webpki
            }
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

/// The CAs of `sslrootcert`, else the system's store and the webpki roots.
fn root_store(root_cert: Option<&PathBuf>) -> Result<RootCertStore, ConnectionError> {
    let mut roots = RootCertStore::empty();
    if let Some(path) = root_cert {
        let unreadable = |e: &dyn std::fmt::Display| {
            ConnectionError::BadConnection(format!("sslrootcert {}: {e}", path.display()))
        };
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
            roots
                .add(cert.map_err(|e| unreadable(&e))?)
                .map_err(|e| unreadable(&e))?;
        }
        if roots.is_empty() {
            return Err(unreadable(&"no certificate in the file"));
        }
        return Ok(roots);
    }
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // Certificates of the system store that cannot be read are skipped: the webpki roots remain.
    let system = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(system.certs);
    Ok(roots)
}

/// `sslmode=prefer` and `require` without a root certificate: encrypted, the peer not checked
/// (as libpq). The handshake signatures are still verified.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the name on the certificate is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name: a name error means the chain was trusted.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A connection error in words that name the cause, followed by tokio-postgres's own chain.
fn describe(error: &tokio_postgres::Error, target: &Target) -> String {
    let chain = chain(error);
    let cause = certificate_error(error).map(|e| match e {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => {
            match &target.root_cert {
                Some(path) => format!(
                    "certificate not trusted: the server's certificate is not signed by a CA in \
                     sslrootcert ({})",
                    path.display()
                ),
                None => "certificate not trusted: the server's certificate is not signed by a CA \
                         of the system store or the webpki roots (set sslrootcert)"
                    .to_owned(),
            }
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!(
                "host name mismatch: the server's certificate is not issued for {} \
                 (sslmode=verify-full)",
                hosts(&target.config)
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "certificate expired: the server's certificate is past its validity".to_owned()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate not yet valid: check the clocks".to_owned()
        }
        other => format!("the server's certificate was refused: {other:?}"),
    });
    if let Some(cause) = cause {
        return format!("{cause} ({chain})");
    }
    if chain.contains("server does not support TLS") {
        return format!(
            "server does not support TLS, and sslmode={} requires it ({chain})",
            mode_name(target.mode)
        );
    }
    chain
}

fn certificate_error(error: &tokio_postgres::Error) -> Option<CertificateError> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(rustls::Error::InvalidCertificate(cert)) = e.downcast_ref::<rustls::Error>() {
            return Some(cert.clone());
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(rustls::Error::InvalidCertificate(cert)) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                return Some(cert.clone());
            }
        }
        source = e.source();
    }
    None
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

fn hosts(config: &tokio_postgres::Config) -> String {
    let names: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    names.join(", ")
}

fn mode_name(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_the_url() {
        let target = parse_target(
            "postgres://u:p@db.example:6543/app?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x",
        )
        .expect("parses");
        assert_eq!(target.mode, SslMode::VerifyFull);
        assert_eq!(target.root_cert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(target.config.get_ssl_mode(), WireSslMode::Require);
        assert_eq!(target.config.get_application_name(), Some("x"));
        assert_eq!(target.config.get_ports(), [6543]);
    }

    #[test]
    fn prefer_is_the_default_and_system_means_the_default_roots() {
        let target = parse_target("postgres://u@h/app?sslrootcert=system").expect("parses");
        assert_eq!(target.mode, SslMode::Prefer);
        assert_eq!(target.root_cert, None);
        assert_eq!(target.config.get_ssl_mode(), WireSslMode::Prefer);
    }

    #[test]
    fn the_key_value_form_is_read_too() {
        let target = parse_target("host=db.example port=6543 user=u dbname=app sslmode=require")
            .expect("parses");
        assert_eq!(target.mode, SslMode::Require);
        assert_eq!(target.config.get_ports(), [6543]);
        assert_eq!(target.config.get_dbname(), Some("app"));
    }

    #[test]
    fn an_unknown_sslmode_is_named() {
        let err = parse_target("postgres://u@h/app?sslmode=sometimes").expect_err("refused");
        assert!(err.to_string().contains("sslmode `sometimes`"), "{err}");
    }

    #[test]
    fn the_pooler_port_is_read_from_the_url() {
        assert_eq!(
            url_port("postgres://u@pooler.supabase.com:6543/postgres"),
            Some(6543)
        );
        assert_eq!(url_port("postgres://u@localhost/postgres"), None);
        assert_eq!(url_port("host=pooler.example port=6543 user=u"), Some(6543));
    }
}
