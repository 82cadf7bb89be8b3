//! The allow-list and the URL check.

use llmflow_netguard::{check_url, AddressPolicy, Blocked, Url};

use crate::ip;

#[test]
fn policy_allow_list() {
    let none = AddressPolicy::default();
    assert!(!none.permits(ip("127.0.0.1")));
    assert!(none.permits(ip("8.8.8.8")));

    let local = AddressPolicy::parse_cidrs(" 127.0.0.0/8 , ,::1/128,10.1.2.3,").unwrap();
    assert_eq!(local.allowed().len(), 3);
    assert!(local.permits(ip("127.0.0.1")));
    assert!(local.permits(ip("127.9.9.9")));
    assert!(local.permits(ip("::1")));
    assert!(local.permits(ip("::ffff:127.0.0.1")));
    assert!(local.permits(ip("10.1.2.3")));
    assert!(!local.permits(ip("10.1.2.4")));
    assert!(!local.permits(ip("169.254.169.254")));
    assert!(local.permits(ip("8.8.8.8")));
    assert_eq!(
        AddressPolicy::parse_cidrs("").unwrap(),
        AddressPolicy::default()
    );
    assert_eq!(
        AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]),
        AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap()
    );
}

#[test]
fn policy_parse_errors_name_the_entry() {
    for (list, bad) in [
        ("127.0.0.0/8,nope", "nope"),
        ("10.0.0.0/33", "10.0.0.0/33"),
        ("  300.1.1.1 ", "300.1.1.1"),
        ("::1/129", "::1/129"),
    ] {
        let err = AddressPolicy::parse_cidrs(list).unwrap_err();
        assert_eq!(err.entry, bad);
        assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
    }
}

#[test]
fn check_url_literals_and_schemes() {
    let none = AddressPolicy::default();
    let check = |u: &str| check_url(&none, &Url::parse(u).unwrap());
    for u in [
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "https://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1:8080/",
        "http://[fd00::1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://0/",
    ] {
        assert!(
            matches!(check(u), Err(Blocked::Address { .. })),
            "{u}: {:?}",
            check(u)
        );
    }
    assert_eq!(
        check("ftp://example.com/"),
        Err(Blocked::Scheme("ftp".into()))
    );
    assert_eq!(
        check("file:///etc/passwd"),
        Err(Blocked::Scheme("file".into()))
    );
    assert!(matches!(
        check("gopher://127.0.0.1/"),
        Err(Blocked::Scheme(_))
    ));
    assert_eq!(check("https://example.com/hook"), Ok(()));
    assert_eq!(check("http://8.8.8.8/"), Ok(()));
    assert_eq!(check("http://[2606:4700::1111]/"), Ok(()));
    // Names pass here; the resolver judges them.
    assert_eq!(check("http://localhost/"), Ok(()));

    let msg = check("http://0x7f.1/").unwrap_err().to_string();
    assert!(
        msg.contains("127.0.0.1") && msg.contains("loopback"),
        "{msg}"
    );

    let local = AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap();
    assert_eq!(
        check_url(&local, &Url::parse("http://127.0.0.1:9/").unwrap()),
        Ok(())
    );
}
