"""Connecting to remote image hosts only at addresses a policy allows (no private, loopback or metadata targets)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

import anyio
import httpcore

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressPolicy = Callable[[IPAddress], bool]
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

# NAT64 (RFC 6052) routes these to the IPv4 address in their last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class ForbiddenAddressError(Exception):
    """A host resolved to an address the policy refuses; deliberately not an httpcore error, so no retry."""


def is_public_address(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses: false for loopback, private, link-local (cloud
    metadata), shared (100.64/10), multicast, reserved and unspecified ones, and for IPv6 forms that embed
    such an IPv4 address (mapped, 6to4, NAT64)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
        if embedded is not None and not is_public_address(embedded):
            return False
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order; raises OSError when it resolves to none."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


class CheckedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore backend that resolves each host itself, refuses it unless every address passes
    `address_allowed`, and connects to a checked address.

    httpx has no public hook for name resolution, but httpcore's connection pool takes a network backend.
    Resolving inside `connect_tcp` makes the address checked the address connected to (no DNS-rebinding
    window between a check and a second lookup), while TLS (SNI, certificate) and the Host header still see
    the name, because httpcore passes the name to `start_tls` on the stream this returns."""

    def __init__(
        self,
        address_allowed: AddressPolicy = is_public_address,
        resolve: Resolver = resolve_host,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._address_allowed = address_allowed
        self._resolve = resolve
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._resolve(host, port)
        except (OSError, UnicodeError) as error:
            raise httpcore.ConnectError(f"cannot resolve {host}") from error
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        if not all(self._address_allowed(address) for address in addresses):
            raise ForbiddenAddressError(host)
        failure = httpcore.ConnectError(f"cannot connect to {host}")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as error:
                failure = error
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
