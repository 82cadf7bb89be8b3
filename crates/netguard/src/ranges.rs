//! The address ranges no caller-supplied URL may reach, each with the reason reported to the
//! caller.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

const fn v4(addr: Ipv4Addr, prefix: u8) -> IpNet {
    IpNet::V4(Ipv4Net::new_assert(addr, prefix))
}

const fn v6(addr: Ipv6Addr, prefix: u8) -> IpNet {
    IpNet::V6(Ipv6Net::new_assert(addr, prefix))
}

/// Every range no webhook may reach, with the reason reported to the caller. First match wins
/// (IPv4 entries never match IPv6 addresses and the other way round). IPv6 forms that carry an
/// IPv4 address are judged by that address before this table is consulted (see
/// [`EMBEDDED_V4`]).
const BLOCKED: &[(IpNet, &str)] = &[
    (
        v4(Ipv4Addr::new(0, 0, 0, 0), 8),
        "\"this network\" (0.0.0.0/8)",
    ),
    (v4(Ipv4Addr::new(10, 0, 0, 0), 8), "private (10.0.0.0/8)"),
    (
        v4(Ipv4Addr::new(100, 64, 0, 0), 10),
        "carrier-grade NAT shared space (100.64.0.0/10)",
    ),
    (v4(Ipv4Addr::new(127, 0, 0, 0), 8), "loopback (127.0.0.0/8)"),
    (
        v4(Ipv4Addr::new(169, 254, 0, 0), 16),
        "link-local (169.254.0.0/16, includes cloud metadata)",
    ),
    (
        v4(Ipv4Addr::new(172, 16, 0, 0), 12),
        "private (172.16.0.0/12)",
    ),
    (
        v4(Ipv4Addr::new(192, 0, 0, 0), 24),
        "IETF protocol assignments (192.0.0.0/24)",
    ),
    (
        v4(Ipv4Addr::new(192, 0, 2, 0), 24),
        "documentation (192.0.2.0/24)",
    ),
    (
        v4(Ipv4Addr::new(192, 88, 99, 0), 24),
        "deprecated 6to4 relay anycast (192.88.99.0/24)",
    ),
    (
        v4(Ipv4Addr::new(192, 168, 0, 0), 16),
        "private (192.168.0.0/16)",
    ),
    (
        v4(Ipv4Addr::new(198, 18, 0, 0), 15),
        "benchmarking (198.18.0.0/15)",
    ),
    (
        v4(Ipv4Addr::new(198, 51, 100, 0), 24),
        "documentation (198.51.100.0/24)",
    ),
    (
        v4(Ipv4Addr::new(203, 0, 113, 0), 24),
        "documentation (203.0.113.0/24)",
    ),
    (
        v4(Ipv4Addr::new(224, 0, 0, 0), 4),
        "multicast (224.0.0.0/4)",
    ),
    (
        v4(Ipv4Addr::new(255, 255, 255, 255), 32),
        "broadcast (255.255.255.255)",
    ),
    (v4(Ipv4Addr::new(240, 0, 0, 0), 4), "reserved (240.0.0.0/4)"),
    (
        v6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 128),
        "unspecified (::)",
    ),
    (
        v6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1), 128),
        "loopback (::1)",
    ),
    (
        v6(Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48),
        "local-use NAT64 (64:ff9b:1::/48)",
    ),
    (
        v6(Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),
        "discard-only (100::/64)",
    ),
    (
        v6(Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32),
        "Teredo tunnel (2001::/32)",
    ),
    (
        v6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0), 48),
        "benchmarking (2001:2::/48)",
    ),
    (
        v6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
        "documentation (2001:db8::/32)",
    ),
    (
        v6(Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),
        "documentation (3fff::/20)",
    ),
    (
        v6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
        "unique local (fc00::/7)",
    ),
    (
        v6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
        "link-local (fe80::/10)",
    ),
    (
        v6(Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),
        "deprecated site-local (fec0::/10)",
    ),
    (
        v6(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
        "multicast (ff00::/8)",
    ),
];

/// Where an IPv6 form carries an IPv4 address: the low 32 bits, or bits 80..112 for 6to4.
#[derive(Clone, Copy)]
enum Carried {
    Low32,
    SixToFour,
}

/// IPv6 forms that carry an IPv4 address, judged by that address.
const EMBEDDED_V4: &[(IpNet, &str, Carried)] = &[
    (
        v6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96),
        "IPv4-mapped",
        Carried::Low32,
    ),
    (
        v6(Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, 0, 0), 96),
        "IPv4-translated (::ffff:0:0:0/96)",
        Carried::Low32,
    ),
    (
        v6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96),
        "NAT64 (64:ff9b::/96)",
        Carried::Low32,
    ),
    (
        v6(Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16),
        "6to4 (2002::/16)",
        Carried::SixToFour,
    ),
];

/// `::a.b.c.d`, deprecated by RFC 4291 and never routed: refused whatever it embeds.
const IPV4_COMPATIBLE: IpNet = v6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96);

/// Global unicast; every IPv6 address outside it is reserved.
const GLOBAL_UNICAST: IpNet = v6(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);

fn table_reason(ip: IpAddr) -> Option<&'static str> {
    BLOCKED
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, why)| *why)
}

fn carried_v4(ip: Ipv6Addr, carried: Carried) -> Ipv4Addr {
    let bits = u128::from(ip);
    let shift = match carried {
        Carried::Low32 => 0,
        Carried::SixToFour => 80,
    };
    Ipv4Addr::from(((bits >> shift) & 0xffff_ffff) as u32)
}

fn v6_reason(ip: Ipv6Addr) -> Option<String> {
    let addr = IpAddr::V6(ip);
    if let Some((_, form, carried)) = EMBEDDED_V4.iter().find(|(net, _, _)| net.contains(&addr)) {
        let v4 = carried_v4(ip, *carried);
        return table_reason(IpAddr::V4(v4))
            .map(|why| format!("{form} form of {v4}, which is {why}"));
    }
    if let Some(why) = table_reason(addr) {
        return Some(why.to_owned());
    }
    if IPV4_COMPATIBLE.contains(&addr) {
        return Some(format!(
            "deprecated IPv4-compatible form (::/96) of {}",
            carried_v4(ip, Carried::Low32)
        ));
    }
    if !GLOBAL_UNICAST.contains(&addr) {
        return Some("reserved (outside global unicast 2000::/3)".to_owned());
    }
    None
}

/// Why `ip` may not be a webhook destination, or `None` if it is a public address.
///
/// Embedded-IPv4 IPv6 forms (IPv4-mapped, IPv4-translated, NAT64 `64:ff9b::/96`, 6to4
/// `2002::/16`) are judged by the IPv4 address they carry: with a public IPv4 they are allowed,
/// because that is how IPv6-only networks reach public IPv4 hosts. Deprecated IPv4-compatible
/// `::/96`, Teredo and local-use NAT64 are always refused.
pub fn forbidden_reason(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(_) => table_reason(ip).map(str::to_owned),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

/// True if `ip` is loopback, private, link-local, CGNAT, ULA, documentation, benchmarking,
/// multicast, reserved or broadcast, directly or embedded in an IPv6 form (see
/// [`forbidden_reason`]).
pub fn is_forbidden(ip: IpAddr) -> bool {
    forbidden_reason(ip).is_some()
}
