//! Networks, and what roomflow needs to know of a store's URL (`scheme://[user[:password]@]host[:port]
//! [/path]`): its host, whether it is on this machine, its credentials, and the URL
//! without its password, for messages and `roomflow config`.

use std::net::IpAddr;

use crate::config::Secret;

/// The parts of a URL that credentials and reachability depend on.
#[derive(Debug, PartialEq, Eq)]
pub struct Endpoint<'a> {
    /// The user, empty if none.
    pub user: &'a str,
    /// The password, empty if none.
    pub password: &'a str,
    /// The host, without brackets around an IPv6 address.
    pub host: &'a str,
}

impl<'a> Endpoint<'a> {
    /// The parts of `url`, if it has a scheme and a host.
    pub fn parse(url: &'a str) -> Option<Self> {
        let (_, rest) = url.split_once("://")?;
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (&authority[..at], &authority[at + 1..]),
            None => ("", authority),
        };
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let host = match hostport.strip_prefix('[') {
            Some(v6) => &v6[..v6.find(']')?],
            None => hostport.split(':').next().unwrap_or_default(),
        };
        (!host.is_empty()).then_some(Self {
            user,
            password,
            host,
        })
    }

    /// Whether the host is this machine: `localhost` or a loopback address.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// An IP network, `address/prefix`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Network {
    type Err = String;

    /// Parses `10.0.0.0/8`, `127.0.0.1` (one address) or `fd00::/8`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = s.split_once('/').unwrap_or((s, ""));
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{s:?} is not an address or network like 10.0.0.0/8"))?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            "" => bits,
            p => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| format!("{s:?}: the prefix must be 0 to {bits}"))?,
        };
        Ok(Self { address, prefix })
    }
}

impl Network {
    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// `url` with its password, if any, replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some(e) = Endpoint::parse(url) else {
        return url.to_owned();
    };
    if e.password.is_empty() {
        return url.to_owned();
    }
    let secret = format!(":{}@", e.password);
    url.replacen(&secret, ":***@", 1)
}

/// Why the store at `url` is not protected well enough, if it is not: a store beyond
/// loopback needs a password of at least `min_len` characters that is no placeholder.
/// `password` is the one configured beside the URL, if the store takes it there.
pub fn weak_credentials(url: &str, password: Option<&Secret>, min_len: usize) -> Option<String> {
    let e = Endpoint::parse(url)?;
    if e.is_loopback() {
        return None;
    }
    let given = password.map_or(e.password, Secret::expose);
    Secret::new(given).weakness(min_len).map(|why| {
        format!(
            "{} is reachable beyond this machine, so its password {why}",
            redact(url)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_contain() {
        let n: Network = "10.0.0.0/8".parse().unwrap();
        assert!(n.contains(ip("10.255.0.1")) && !n.contains(ip("11.0.0.1")));
        assert!(!n.contains(ip("::ffff:10.0.0.1")), "families do not mix");
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("1.2.3.4")));
        let v6: Network = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_are_taken_apart() {
        let e = Endpoint::parse("redis://rf-pipeline:s3cret@10.0.0.5:6379/0").unwrap();
        assert_eq!(
            (e.user, e.password, e.host),
            ("rf-pipeline", "s3cret", "10.0.0.5")
        );
        assert!(!e.is_loopback());
        let e = Endpoint::parse("http://[::1]:18123").unwrap();
        assert_eq!(e.host, "::1");
        assert!(e.is_loopback());
        assert!(Endpoint::parse("redis://localhost").unwrap().is_loopback());
        assert!(Endpoint::parse("no scheme").is_none());
        // A password with an '@' of its own: the host is after the last one.
        let e = Endpoint::parse("redis://u:p@ss@host:1/0").unwrap();
        assert_eq!((e.password, e.host), ("p@ss", "host"));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("redis://rf:pw@10.0.0.1:6379/0"),
            "redis://rf:***@10.0.0.1:6379/0"
        );
        assert_eq!(
            redact("redis://:pw@10.0.0.1:6379/0"),
            "redis://:***@10.0.0.1:6379/0"
        );
        assert_eq!(redact("http://127.0.0.1:18081"), "http://127.0.0.1:18081");
    }

    #[test]
    fn stores_beyond_loopback_need_a_real_password() {
        let long = Secret::new("a-real-secret-from-the-vault-42");
        assert_eq!(
            weak_credentials("redis://127.0.0.1:16379/0", None, 16),
            None
        );
        assert!(weak_credentials("redis://redis.svc:6379/0", None, 16).is_some());
        assert!(weak_credentials("redis://rf:change-me-now-please@redis:6379", None, 16).is_some());
        assert_eq!(
            weak_credentials(
                "redis://rf:a-real-secret-from-the-vault-42@redis:6379",
                None,
                16
            ),
            None
        );
        let placeholder = Secret::new("change-me");
        assert!(weak_credentials("http://clickhouse:8123", Some(&placeholder), 12).is_some());
        assert_eq!(
            weak_credentials("http://clickhouse:8123", Some(&long), 12),
            None
        );
    }
}
