//! Where a 9P server listens and whom it lets in: `tcp:HOST:PORT` and
//! `unix:PATH` addresses, and `--allow` CIDR ranges for TCP clients.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;

/// The address `hydra serve` listens on by default.
pub const DEFAULT_LISTEN: &str = "tcp:127.0.0.1:5640";

/// One listening address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// A TCP socket.
    Tcp(SocketAddr),
    /// A unix-domain socket at this path.
    Unix(PathBuf),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "tcp:{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a socket path".into());
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        let Some(hostport) = s.strip_prefix("tcp:") else {
            return Err(format!("{s:?}: expected tcp:HOST:PORT or unix:PATH"));
        };
        let addr = hostport
            .to_socket_addrs()
            .map_err(|e| format!("{s:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("{s:?}: the host has no address"))?;
        Ok(Listen::Tcp(addr))
    }
}

/// An address range: `10.0.0.0/8`, `::1/128`, or a single address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, bits) = match s.split_once('/') {
            Some((ip, bits)) => (ip, Some(bits)),
            None => (s, None),
        };
        let net: IpAddr = ip.parse().map_err(|_| format!("{s:?}: not an IP range"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
            None => max,
        };
        Ok(Cidr { net, bits })
    }
}

impl Cidr {
    /// Whether `ip` lies in the range (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = (bits / 8) as usize;
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[full] & mask == b[full] & mask
}

/// Whether a TCP client at `ip` may connect: loopback clients always
/// may unless `allow` is given, and then only those `allow` names.
pub fn admitted(ip: IpAddr, allow: &[Cidr]) -> bool {
    if allow.is_empty() {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        return ip.is_loopback();
    }
    allow.iter().any(|c| c.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            "tcp:127.0.0.1:5640".parse::<Listen>(),
            Ok(Listen::Tcp("127.0.0.1:5640".parse().expect("addr")))
        );
        assert_eq!(
            "unix:/run/h.sock".parse::<Listen>(),
            Ok(Listen::Unix("/run/h.sock".into()))
        );
        assert!("udp:1.2.3.4:5".parse::<Listen>().is_err());
        assert!("tcp:nonsense".parse::<Listen>().is_err());
        assert!("unix:".parse::<Listen>().is_err());
    }

    #[test]
    fn ranges_admit_what_they_name() {
        let lan: Cidr = "10.1.0.0/16".parse().expect("cidr");
        assert!(lan.contains("10.1.200.3".parse().expect("ip")));
        assert!(!lan.contains("10.2.0.1".parse().expect("ip")));
        assert!(lan.contains("::ffff:10.1.0.9".parse().expect("ip")));
        let odd: Cidr = "192.168.1.128/25".parse().expect("cidr");
        assert!(odd.contains("192.168.1.200".parse().expect("ip")));
        assert!(!odd.contains("192.168.1.100".parse().expect("ip")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!(admitted("127.0.0.1".parse().expect("ip"), &[]));
        assert!(!admitted("10.1.0.1".parse().expect("ip"), &[]));
        assert!(admitted("10.1.0.1".parse().expect("ip"), &[lan]));
        assert!(!admitted("127.0.0.1".parse().expect("ip"), &[lan]));
    }
}
