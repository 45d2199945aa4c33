//! Where alerts may go: a target's host is resolved, and addresses of this machine, of
//! private and link-local networks and of cloud metadata services are refused unless an
//! allowlist names them. The connection is made to the very addresses that were
//! checked (the check is the HTTP client's resolver), so a DNS answer cannot change
//! between the check and the connection.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ureq::http::Uri;

pub use crate::endpoint::Network;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// Why an address is not a place for alerts, if it is not: loopback, private,
/// link-local (cloud metadata services live there), shared, multicast or reserved.
pub fn internal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            // IPv4 in IPv6 (mapped, or NAT64's well-known prefix) is judged as IPv4.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            let segments = v6.segments();
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = segments[6].to_be_bytes();
                let [c, d] = segments[7].to_be_bytes();
                return internal_v4(Ipv4Addr::new(a, b, c, d));
            }
            let first = segments[0];
            if v6.is_loopback() || v6.is_unspecified() {
                Some("this machine")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a private network")
            } else if first & 0xffc0 == 0xfe80 {
                Some("a link-local network")
            } else if v6.is_multicast() {
                Some("a multicast group")
            } else {
                None
            }
        }
    }
}

fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() || a == 0 {
        Some("this machine")
    } else if ip.is_private() {
        Some("a private network")
    } else if ip.is_link_local() {
        Some("a link-local network (cloud metadata)")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) network")
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        Some("a protocol-assignment network")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("a benchmarking network")
    } else if ip.is_multicast() || a >= 240 || ip.is_broadcast() {
        Some("a multicast or reserved network")
    } else {
        None
    }
}

/// A target that resolves only to refused addresses.
#[derive(Debug)]
pub struct Refused(pub &'static str);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the target's address is in {}, where alerts are not sent (alerts.allowed_networks)",
            self.0
        )
    }
}

impl std::error::Error for Refused {}

/// The HTTP client's resolver: the system's, keeping only the addresses alerts may go to.
#[derive(Debug)]
pub struct Guard {
    allowed: Vec<Network>,
}

impl Guard {
    /// Refuses internal addresses except those in `allowed`.
    pub fn new(allowed: Vec<Network>) -> Self {
        Self { allowed }
    }

    /// Why `ip` is refused, if it is.
    pub fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        let why = internal(ip)?;
        (!self.allowed.iter().any(|n| n.contains(ip))).then_some(why)
    }
}

impl Resolver for Guard {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let found = DefaultResolver::default().resolve(uri, config, timeout)?;
        let mut kept = self.empty();
        let mut refused = None;
        for addr in found.iter() {
            match self.refuses(addr.ip()) {
                Some(why) => refused = Some(why),
                None => kept.push(*addr),
            }
        }
        match (kept.is_empty(), refused) {
            (true, Some(why)) => Err(ureq::Error::Other(Box::new(Refused(why)))),
            (true, None) => Err(ureq::Error::HostNotFound),
            (false, _) => Ok(kept),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        let guard = Guard::new(Vec::new());
        for refused in [
            "127.0.0.1",
            "127.8.9.10",
            "0.0.0.0",
            "10.0.0.5",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:10.0.0.5",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(guard.refuses(ip(refused)).is_some(), "{refused}");
        }
        for public in ["8.8.8.8", "52.1.2.3", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert_eq!(guard.refuses(ip(public)), None, "{public}");
        }
        let allowed = Guard::new(vec![
            "127.0.0.1".parse().unwrap(),
            "10.1.0.0/16".parse().unwrap(),
        ]);
        assert_eq!(allowed.refuses(ip("127.0.0.1")), None);
        assert_eq!(allowed.refuses(ip("10.1.200.3")), None);
        assert!(allowed.refuses(ip("127.0.0.2")).is_some());
        assert!(allowed.refuses(ip("10.2.0.1")).is_some());
    }
}
