"""Which remote ICE candidates the server may send connectivity checks to. An offer's
candidates name addresses the server will send STUN requests to: left unchecked, a
participant could aim them at the cloud metadata service, the server's own loopback or
any host of the hall's network. Pure, no I/O: the room filters each offer's
``a=candidate`` lines before aiortc sees them (coreview takes no trickled candidates).

Refused by default: unspecified, multicast, broadcast, link-local (169.254.0.0/16, which
holds the metadata address 169.254.169.254, and fe80::/10), AWS's IPv6 metadata
address, reserved ranges, loopback unless every announced address is loopback, and
host names (mDNS ``.local`` names cannot be vetted before they resolve). Settings add
networks to refuse (e.g. private ranges the server must never reach) and networks to
allow whatever the defaults say."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

REFUSED: tuple[Network, ...] = (
    ipaddress.ip_network("169.254.169.254/32"),  # cloud metadata (also link-local)
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS's IPv6 metadata
    ipaddress.ip_network("0.0.0.0/8"),  # "this network"
)
BROADCAST = ipaddress.ip_address("255.255.255.255")


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDR networks (a bare address is a /32 or /128); ValueError names a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not a network: {value!r}") from exc
    return tuple(networks)


@dataclass(frozen=True)
class CandidatePolicy:
    allowed: tuple[Network, ...] = ()
    """Always allowed (checked first)."""
    denied: tuple[Network, ...] = ()
    """Refused in addition to the defaults."""
    allow_loopback: bool = False

    @classmethod
    def for_server(
        cls, announced: Iterable[str], allowed: Iterable[str] = (), denied: Iterable[str] = ()
    ) -> CandidatePolicy:
        """Loopback is allowed only when every announced address is loopback (a server
        for tests and demos on one machine)."""
        addresses = [_address(a) for a in announced]
        loopback = bool(addresses) and all(a is not None and a.is_loopback for a in addresses)
        return cls(parse_networks(allowed), parse_networks(denied), loopback)

    def allows(self, host: str) -> bool:
        address = _address(host)
        if address is None:
            return False  # a host name: we cannot know where checks would go
        if any(address in network for network in self.allowed):
            return True
        if any(address in network for network in (*self.denied, *REFUSED)):
            return False
        if address.is_loopback:
            return self.allow_loopback
        return not (
            address.is_unspecified
            or address.is_multicast
            or address.is_link_local
            or address.is_reserved
            or address == BROADCAST
        )

    def filter_sdp(self, text: str) -> tuple[str, list[str]]:
        """The SDP without candidate lines naming a refused address, and those
        addresses."""
        lines = text.splitlines(keepends=True)
        kept, dropped = [], []
        for line in lines:
            host = _candidate_host(line)
            if host is not None and not self.allows(host):
                dropped.append(host)
                continue
            kept.append(line)
        return "".join(kept), dropped


def _address(host: str) -> Address | None:
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _candidate_host(line: str) -> str | None:
    """The connection address of an ``a=candidate:`` line (RFC 8839: foundation,
    component, transport, priority, address, port, ...); None for other lines. A
    malformed candidate line yields "" (refused)."""
    if not line.startswith("a=candidate:"):
        return None
    fields = line[len("a=candidate:") :].split()
    return fields[4] if len(fields) >= 6 else ""
