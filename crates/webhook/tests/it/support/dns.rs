//! A DNS server on loopback that answers from a fixed zone, and a resolver that asks it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use llmflow_netguard::AddressPolicy;
use llmflow_webhook::resolver::PolicyResolver;
use tokio::net::UdpSocket;

use super::ip;

/// A UDP DNS server on 127.0.0.1 answering A/AAAA queries from `zone`; other names get
/// NXDOMAIN. Returns its port.
async fn fake_dns(zone: HashMap<&'static str, Vec<IpAddr>>) -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let query = &buf[..n];
            // Question: labels from offset 12 to a zero byte, then QTYPE and QCLASS.
            let mut pos = 12;
            let mut labels = Vec::new();
            while query[pos] != 0 {
                let len = query[pos] as usize;
                labels.push(String::from_utf8_lossy(&query[pos + 1..pos + 1 + len]).to_string());
                pos += 1 + len;
            }
            let qend = pos + 5;
            let qtype = u16::from_be_bytes([query[pos + 1], query[pos + 2]]);
            let name = labels.join(".").to_ascii_lowercase();
            let answers: Vec<IpAddr> = zone
                .get(name.as_str())
                .map(|ips| {
                    ips.iter()
                        .copied()
                        .filter(|ip| (qtype == 1) == ip.is_ipv4() && (qtype == 1 || qtype == 28))
                        .collect()
                })
                .unwrap_or_default();
            let rcode = if zone.contains_key(name.as_str()) {
                0
            } else {
                3
            };
            let mut resp = Vec::new();
            resp.extend_from_slice(&query[0..2]);
            resp.extend_from_slice(&[0x81, 0x80 | rcode]);
            resp.extend_from_slice(&[0, 1]);
            resp.extend_from_slice(&(answers.len() as u16).to_be_bytes());
            resp.extend_from_slice(&[0, 0, 0, 0]);
            resp.extend_from_slice(&query[12..qend]);
            for ip in answers {
                resp.extend_from_slice(&[0xc0, 0x0c]);
                match ip {
                    IpAddr::V4(v4) => {
                        resp.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                        resp.extend_from_slice(&v4.octets());
                    }
                    IpAddr::V6(v6) => {
                        resp.extend_from_slice(&[0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
                        resp.extend_from_slice(&v6.octets());
                    }
                }
            }
            let _ = sock.send_to(&resp, peer).await;
        }
    });
    port
}

pub async fn resolver_with_fake_dns(policy: AddressPolicy) -> PolicyResolver {
    let zone = HashMap::from([
        ("internal.test", vec![ip("10.0.0.1")]),
        ("metadata.test", vec![ip("169.254.169.254"), ip("fd00::1")]),
        ("mixed.test", vec![ip("10.0.0.1"), ip("127.0.0.1")]),
        ("public.test", vec![ip("8.8.8.8"), ip("2606:4700::1111")]),
        ("empty.test", vec![]),
    ]);
    let port = fake_dns(zone).await;
    let mut conn = ConnectionConfig::udp();
    conn.port = port;
    let server = NameServerConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST), true, vec![conn]);
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 1;
    opts.cache_size = 0;
    PolicyResolver::with_config(
        policy,
        ResolverConfig::from_name_servers(vec![server]),
        opts,
    )
}
