//! Which IP addresses an outbound request must not reach when private destinations are refused.
//!
//! The classification is by the address that is actually connected to, after resolution;
//! IPv4 embedded in IPv6 (mapped, NAT64, 6to4) is judged by the IPv4 address it carries, so
//! `[::ffff:127.0.0.1]` is loopback like `127.0.0.1`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// AWS, GCP, Azure, OpenStack… all serve instance metadata (and credentials) here.
const METADATA_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// AWS's IPv6 metadata endpoint.
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

/// Why `ip` is not a public unicast address (`"a loopback address"`, …), or `None` if it is.
pub fn non_public_kind(ip: IpAddr) -> Option<&'static str> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip == METADATA_V4 {
        Some("a cloud metadata address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a CGNAT (shared address space) address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if ip.is_broadcast() {
        Some("a broadcast address")
    } else if a == 0                                  // "this network"
        || a >= 240                                   // reserved for future use
        || (a == 192 && b == 0 && c == 0)             // IETF protocol assignments
        || (a == 198 && (b & 0xfe) == 18)             // benchmarking
        || ip.is_documentation()
    {
        Some("a reserved address")
    } else {
        None
    }
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    if ip == METADATA_V6 {
        Some("a cloud metadata address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if let Some(v4) = embedded_v4(ip) {
        v4_kind(v4)
    } else if ip.is_unique_local() {
        Some("a unique-local address")
    } else if ip.is_unicast_link_local() {
        Some("a link-local address")
    } else if (seg[0] & 0xffc0) == 0xfec0 {
        Some("a site-local address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if (seg[0] == 0x2001 && seg[1] == 0x0db8)  // documentation
        || (seg[0] == 0x0100 && seg[1..4] == [0, 0, 0]) // discard-only
        || seg[..6] == [0, 0, 0, 0, 0, 0]
    // IPv4-compatible (deprecated)
    {
        Some("a reserved address")
    } else {
        None
    }
}

/// The IPv4 address carried by a NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address: such an
/// address reaches that IPv4 host, so it is judged as that host.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    let octets = ip.octets();
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some(Ipv4Addr::new(
            octets[12], octets[13], octets[14], octets[15],
        ))
    } else if seg[0] == 0x2002 {
        Some(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<&'static str> {
        non_public_kind(s.parse().unwrap())
    }

    #[test]
    fn non_public_addresses_are_named() {
        let cases = [
            ("127.0.0.1", "a loopback address"),
            ("127.8.9.10", "a loopback address"),
            ("::1", "a loopback address"),
            ("::ffff:127.0.0.1", "a loopback address"),
            ("10.0.0.1", "a private address"),
            ("172.16.0.1", "a private address"),
            ("172.31.255.255", "a private address"),
            ("192.168.1.1", "a private address"),
            ("::ffff:10.1.2.3", "a private address"),
            ("64:ff9b::10.1.2.3", "a private address"),
            ("2002:0a00:0001::1", "a private address"),
            ("169.254.169.254", "a cloud metadata address"),
            ("fd00:ec2::254", "a cloud metadata address"),
            ("::ffff:169.254.169.254", "a cloud metadata address"),
            ("169.254.1.1", "a link-local address"),
            ("fe80::1", "a link-local address"),
            ("fd12:3456::1", "a unique-local address"),
            ("fc00::1", "a unique-local address"),
            ("100.64.0.1", "a CGNAT (shared address space) address"),
            ("100.127.255.255", "a CGNAT (shared address space) address"),
            ("224.0.0.1", "a multicast address"),
            ("ff02::1", "a multicast address"),
            ("0.0.0.0", "an unspecified address"),
            ("::", "an unspecified address"),
            ("255.255.255.255", "a broadcast address"),
            ("0.1.2.3", "a reserved address"),
            ("240.0.0.1", "a reserved address"),
            ("2001:db8::1", "a reserved address"),
        ];
        for (ip, expected) in cases {
            assert_eq!(kind(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(kind(ip), None, "{ip}");
        }
    }
}
