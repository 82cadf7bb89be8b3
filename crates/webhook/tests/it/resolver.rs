//! The policy resolver: DNS answers filtered by the address policy, alone and inside reqwest.

use std::time::Duration;

use llmflow_netguard::{AddressPolicy, Blocked};
use llmflow_webhook::classify::{classify, describe, ErrorClass};
use llmflow_webhook::client::build_client_with_resolver;
use llmflow_webhook::resolver::LookupError;

use crate::support::dns::resolver_with_fake_dns;
use crate::support::http::{attempt, client, Server, OK};
use crate::support::ip;

#[tokio::test]
async fn resolver_refuses_localhost_through_reqwest() {
    // No check_url here: the refusal comes from PolicyResolver inside reqwest.
    let server = Server::start(OK).await;
    let client = client(&AddressPolicy::default());
    let url = format!("http://localhost:{}/hook?token=s3cret", server.port);
    let err = client.get(&url).send().await.unwrap_err();
    assert_eq!(classify(&err), ErrorClass::Blocked);
    let text = describe(&err);
    assert!(
        text.contains("localhost") && text.contains("loopback"),
        "{text}"
    );
    assert!(
        !text.contains("s3cret") && !text.contains("/hook"),
        "{text}"
    );
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn resolver_filters_dns_answers() {
    let resolver = resolver_with_fake_dns(AddressPolicy::default()).await;

    let mut public = resolver.lookup("public.test").await.unwrap();
    public.sort();
    assert_eq!(public, vec![ip("8.8.8.8"), ip("2606:4700::1111")]);

    for host in ["internal.test", "metadata.test", "mixed.test"] {
        match resolver.lookup(host).await {
            Err(LookupError::Blocked(Blocked::Host { host: h, rejected })) => {
                assert_eq!(h, host);
                assert!(!rejected.is_empty());
            }
            other => panic!("{host}: {other:?}"),
        }
    }
    let msg = resolver
        .lookup("metadata.test")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("169.254.169.254") && msg.contains("fd00::1"),
        "{msg}"
    );

    let nx = resolver
        .lookup("nxdomain.test")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        nx,
        "could not resolve webhook host `nxdomain.test`: no such host (NXDOMAIN)"
    );
    assert!(matches!(
        resolver.lookup("empty.test").await,
        Err(LookupError::Dns(_))
    ));
    // localhost never reaches DNS (the fake server does not know it).
    assert!(matches!(
        resolver.lookup("localhost").await,
        Err(LookupError::Blocked(_))
    ));
}

#[tokio::test]
async fn resolver_keeps_only_permitted_answers() {
    let server = Server::start(OK).await;
    let policy = AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap();
    let resolver = resolver_with_fake_dns(policy.clone()).await;
    assert_eq!(
        resolver.lookup("mixed.test").await.unwrap(),
        vec![ip("127.0.0.1")]
    );

    let client =
        build_client_with_resolver(resolver, Duration::from_secs(2), Duration::from_secs(5))
            .unwrap();
    // mixed.test -> {10.0.0.1, 127.0.0.1}: only the allowed loopback address is dialled.
    let res = attempt(
        &client,
        &policy,
        &format!("http://mixed.test:{}/", server.port),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    // internal.test -> 10.0.0.1 only: refused before any connection.
    let res = attempt(
        &client,
        &policy,
        &format!("http://internal.test:{}/", server.port),
    )
    .await;
    assert_eq!(res.err(), Some(ErrorClass::Blocked));
    // An unknown name is a DNS failure.
    let err = client
        .get(format!("http://nxdomain.test:{}/", server.port))
        .send()
        .await
        .unwrap_err();
    assert_eq!(classify(&err), ErrorClass::Dns, "{}", describe(&err));
    assert!(
        describe(&err).contains("nxdomain.test"),
        "{}",
        describe(&err)
    );
    assert_eq!(server.connections(), 1);
}
