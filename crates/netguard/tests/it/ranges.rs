//! The blocked ranges: which addresses are refused, which pass, and the reasons given.

use llmflow_netguard::{forbidden_reason, is_forbidden};

use crate::ip;

#[test]
fn forbidden_ipv4() {
    for a in [
        "0.0.0.0",
        "0.1.2.3",
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "192.168.255.255",
        "169.254.169.254",
        "169.254.0.1",
        "100.64.0.1",
        "100.127.255.255",
        "192.0.0.1",
        "192.0.0.170",
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        "198.18.0.1",
        "198.19.255.255",
        "192.88.99.1",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "250.1.2.3",
        "255.255.255.255",
    ] {
        assert!(is_forbidden(ip(a)), "{a} should be forbidden");
    }
    assert_eq!(
        forbidden_reason(ip("255.255.255.255")).unwrap(),
        "broadcast (255.255.255.255)"
    );
    assert!(forbidden_reason(ip("169.254.169.254"))
        .unwrap()
        .contains("link-local"));
}

#[test]
fn public_ipv4_allowed() {
    for a in [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "169.253.255.255",
        "192.0.1.0",
        "192.167.255.255",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
    ] {
        assert!(!is_forbidden(ip(a)), "{a} should be allowed");
    }
}

#[test]
fn forbidden_ipv6() {
    for a in [
        "::",
        "::1",
        "fe80::1",
        "febf:ffff::1",
        "fc00::1",
        "fd12:3456:789a::1",
        "ff02::1",
        "ff05::1:3",
        "2001:db8::1",
        "2001:db8:ffff::1",
        "3fff::1",
        "100::1",
        "2001::1",
        "2001:2::1",
        "fec0::1",
        "64:ff9b:1::a00:1",
        // embedded IPv4 forms of forbidden addresses
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:0.0.0.0",
        "::ffff:0:10.0.0.1",
        "::127.0.0.1",
        "::10.0.0.1",
        "::8.8.8.8",
        "64:ff9b::7f00:1",
        "64:ff9b::10.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "2002:7f00:1::",
        "2002:a00:1::1",
        "2002:c0a8:101::1",
        // outside 2000::/3
        "4000::1",
        "::2:0:0:1",
    ] {
        assert!(is_forbidden(ip(a)), "{a} should be forbidden");
    }
    let why = forbidden_reason(ip("64:ff9b::7f00:1")).unwrap();
    assert!(why.contains("NAT64") && why.contains("127.0.0.1"), "{why}");
    let why = forbidden_reason(ip("2002:7f00:1::")).unwrap();
    assert!(why.contains("6to4") && why.contains("127.0.0.1"), "{why}");
    let why = forbidden_reason(ip("::ffff:10.0.0.1")).unwrap();
    assert!(
        why.contains("IPv4-mapped") && why.contains("private"),
        "{why}"
    );
}

#[test]
fn public_ipv6_allowed() {
    for a in [
        "2606:4700::1111",
        "2001:4860:4860::8888",
        "2a00:1450:4001::1",
        // embedded public IPv4: allowed (documented choice)
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ] {
        assert!(!is_forbidden(ip(a)), "{a} should be allowed");
    }
}
