//! PostgreSQL over TLS: `sslmode` in `DATABASE_URL` against a private PostgreSQL with `ssl = on`
//! and a certificate for `localhost` signed by a CA this test run makes.

use diesel::sql_types::{Bool, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use llmflow_core::db::{self, ConnectOptions};
use llmflow_testkit::daemons::{Hba, PrivatePostgres};
use llmflow_testkit::tls::TestCa;

#[derive(diesel::QueryableByName)]
struct Session {
    #[diesel(sql_type = Bool)]
    ssl: bool,
    #[diesel(sql_type = Text)]
    version: String,
}

/// Whether this connection's session is encrypted, as the server sees it.
async fn session(conn: &mut AsyncPgConnection) -> Session {
    diesel::sql_query(
        "SELECT ssl, coalesce(version, '') AS version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .get_result(conn)
    .await
    .expect("pg_stat_ssl")
}

async fn connect(url: &str) -> Result<AsyncPgConnection, String> {
    db::establish(url, ConnectOptions::default())
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmodes_against_a_server_with_a_test_ca_certificate() {
    let server = PrivatePostgres::start(true, Hba::TlsOnly).await;
    let ca = server.ca_file.display().to_string();

    // require: encrypted, the certificate not checked (its CA is unknown to the client).
    let mut conn = connect(&server.url("127.0.0.1", "sslmode=require"))
        .await
        .expect("require connects");
    let s = session(&mut conn).await;
    assert!(s.ssl, "require must encrypt");
    assert!(s.version.starts_with("TLSv1."), "{}", s.version);

    // prefer (the default) takes TLS when the server offers it.
    let mut conn = connect(&server.url("127.0.0.1", "application_name=llmflow"))
        .await
        .expect("prefer connects");
    assert!(session(&mut conn).await.ssl, "prefer must take TLS");

    // verify-full with the test CA and the certificate's name passes.
    let url = server.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let mut conn = connect(&url).await.expect("verify-full connects");
    assert!(session(&mut conn).await.ssl);

    // verify-full with a host the certificate is not issued for fails, naming the mismatch.
    let url = server.url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let err = connect(&url).await.err().expect("wrong host refused");
    assert!(err.contains("host name mismatch"), "{err}");
    assert!(err.contains("127.0.0.1"), "{err}");

    // verify-ca checks the chain only: the same host passes.
    let url = server.url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}"));
    let mut conn = connect(&url).await.expect("verify-ca connects");
    assert!(session(&mut conn).await.ssl);

    // A CA that did not sign the server's certificate: not trusted, for verify-ca and for
    // require with sslrootcert (libpq's rule).
    let other = TestCa::new("another CA");
    let other_file = server.scratch().write("other-ca.pem", &other.cert_pem);
    for mode in ["verify-full", "verify-ca", "require"] {
        let url = server.url(
            "localhost",
            &format!("sslmode={mode}&sslrootcert={}", other_file.display()),
        );
        let err = connect(&url).await.err().expect("untrusted CA refused");
        assert!(err.contains("certificate not trusted"), "{mode}: {err}");
    }

    // verify-full without sslrootcert: the system and webpki roots do not know the test CA.
    let err = connect(&server.url("localhost", "sslmode=verify-full"))
        .await
        .err()
        .expect("unknown CA refused");
    assert!(err.contains("certificate not trusted"), "{err}");

    // disable against hostssl-only rules: the server refuses the plaintext connection.
    let err = connect(&server.url("127.0.0.1", "sslmode=disable"))
        .await
        .err()
        .expect("plaintext refused");
    assert!(err.contains("no encryption"), "{err}");

    // A missing sslrootcert file is named.
    let err = connect(&server.url(
        "localhost",
        "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    ))
    .await
    .err()
    .expect("missing file");
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_against_a_server_without_tls_names_the_cause() {
    let server = PrivatePostgres::start(false, Hba::Any).await;
    let err = connect(&server.url("127.0.0.1", "sslmode=require"))
        .await
        .err()
        .expect("no TLS on the server");
    assert!(err.contains("server does not support TLS"), "{err}");
    // prefer falls back to plaintext, as libpq does.
    let mut conn = connect(&server.url("127.0.0.1", "sslmode=prefer"))
        .await
        .expect("prefer connects without TLS");
    assert!(!session(&mut conn).await.ssl);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_and_the_pool_run_over_verified_tls() {
    let server = PrivatePostgres::start(true, Hba::TlsOnly).await;
    let url = server.url(
        "localhost",
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            server.ca_file.display()
        ),
    );
    let applied = db::run_migrations(&url).await.expect("migrations over TLS");
    assert!(!applied.is_empty());
    for options in [
        ConnectOptions {
            statement_cache: true,
            ..ConnectOptions::default()
        },
        ConnectOptions {
            statement_cache: false,
            ..ConnectOptions::default()
        },
    ] {
        let pool = db::connect_with(&url, 2, options)
            .await
            .expect("pool over TLS");
        let mut conn = pool.get().await.expect("pooled connection");
        assert!(session(&mut conn).await.ssl, "{options:?}");
        // The schema is there: a query through diesel's statement path answers.
        let job = db::jobs::find_job(&mut conn, uuid::Uuid::now_v7()).await;
        assert!(matches!(job, Ok(None)), "{job:?}");
    }
    // A pool whose URL the server refuses fails at start with the cause.
    let err = db::connect_with(
        &server.url("127.0.0.1", "sslmode=disable"),
        2,
        ConnectOptions::default(),
    )
    .await
    .err()
    .expect("refused");
    let text = chain(&err);
    assert!(text.contains("no encryption"), "{text}");
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
