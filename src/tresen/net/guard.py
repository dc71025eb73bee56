"""The outbound-URL guard: no server-side request reaches a private address unless allowed.

Every request of the runtime's HTTP clients passes `GuardedTransport`: the host is resolved,
any non-global address (loopback, private, link-local such as 169.254.169.254, shared,
multicast, reserved) is refused unless the operator lists the host in
TRESEN_OUTBOUND_ALLOW_HOSTS, and the connection goes to the address that was checked (no
second DNS answer in between). Redirects are followed by the client, so each hop passes the
guard again. Response bodies are capped in size and in total time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpx

Resolver = Callable[[str, int], Awaitable[list[str]]]

_DEFAULT_PORTS = {"http": 80, "https": 443}


class UrlRefused(httpx.RequestError):
    """The guard refused a URL (scheme, private address, unknown host, size or time).

    `permanent`: asking again cannot help until an operator changes something (scheme, a
    non-public address, a response over the size limit); False for a host that did not resolve
    or a response that ran out of time.
    """

    def __init__(
        self, message: str, *, permanent: bool = True, request: httpx.Request | None = None
    ) -> None:
        super().__init__(message, request=request)
        self.permanent = permanent


@dataclass(frozen=True)
class OutboundPolicy:
    """What the guard lets through."""

    allow_hosts: frozenset[str] = frozenset()
    """Hosts ("name" or "name:port", lower case) reachable even on non-global addresses."""
    max_response_bytes: int = 32 * 1024 * 1024
    total_seconds: float = 120.0
    dns_ttl_seconds: float = 30.0

    @classmethod
    def from_setting(cls, allow_hosts: str, **limits: float) -> OutboundPolicy:
        """A policy from the comma-separated TRESEN_OUTBOUND_ALLOW_HOSTS value."""
        hosts = frozenset(h.strip().lower() for h in allow_hosts.split(",") if h.strip())
        return cls(allow_hosts=hosts, **limits)  # type: ignore[arg-type]

    def allows(self, host: str, port: int) -> bool:
        """True when the operator allowed this host (any port) or this host and port."""
        host = host.lower().strip("[]")
        return host in self.allow_hosts or f"{host}:{port}" in self.allow_hosts


def is_public(address: str) -> bool:
    """True for a globally routable unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def system_resolver(host: str, port: int) -> list[str]:
    """All addresses the system resolver gives for host."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class GuardedTransport(httpx.AsyncBaseTransport):
    """Wraps a transport: checks and pins the address of every request it sends."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        policy: OutboundPolicy,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.inner = inner
        self.policy = policy
        self.resolver = resolver
        self._cache: dict[tuple[str, int], tuple[float, str]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send the request to the checked address, or raise UrlRefused."""
        url = request.url
        if url.scheme not in _DEFAULT_PORTS or not url.host:
            raise UrlRefused(f"only http(s) URLs with a host are fetched, not {url.scheme!r}")
        port = url.port or _DEFAULT_PORTS[url.scheme]
        if self.policy.allows(url.host, port):
            return self._capped(await self.inner.handle_async_request(request))
        address = await self.address(url.host, port)
        extensions = dict(request.extensions)
        if url.scheme == "https":
            extensions["sni_hostname"] = url.host  # the certificate is checked for the name
        pinned = httpx.Request(
            request.method,
            url.copy_with(host=address),
            headers=request.headers,
            stream=request.stream,
            extensions=extensions,
        )
        return self._capped(await self.inner.handle_async_request(pinned))

    async def address(self, host: str, port: int) -> str:
        """One checked global address of host (cached briefly), or raise UrlRefused."""
        cached = self._cache.get((host, port))
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            addresses = await self.resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise UrlRefused(f"the host {host!r} could not be resolved", permanent=False) from exc
        checked = _all_public(addresses)
        if checked is None:
            raise UrlRefused(
                f"{host!r} resolves to a non-public address; an operator can allow it with "
                "TRESEN_OUTBOUND_ALLOW_HOSTS"
            )
        if len(self._cache) > 1024:
            self._cache.clear()
        self._cache[(host, port)] = (now + self.policy.dns_ttl_seconds, checked)
        return checked

    def _capped(self, response: httpx.Response) -> httpx.Response:
        if isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = _CappedStream(
                response.stream, self.policy.max_response_bytes, self.policy.total_seconds
            )
        return response

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self.inner.aclose()


def _all_public(addresses: Iterable[str]) -> str | None:
    """The first address when every one is public; None otherwise."""
    listed = list(addresses)
    try:
        if not listed or not all(is_public(a) for a in listed):
            return None
    except ValueError:
        return None
    return listed[0].split("%", 1)[0]


class _CappedStream(httpx.AsyncByteStream):
    """A response body that stops over a size or a total-time limit."""

    def __init__(self, inner: httpx.AsyncByteStream, max_bytes: int, seconds: float) -> None:
        self.inner = inner
        self.max_bytes = max_bytes
        self.deadline = time.monotonic() + seconds

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self.inner:
            size += len(chunk)
            if size > self.max_bytes:
                raise UrlRefused(f"the response is larger than {self.max_bytes} bytes")
            if time.monotonic() > self.deadline:
                raise UrlRefused("the response took longer than the time limit", permanent=False)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


def host_of(url: str) -> tuple[str, int]:
    """The lower-case host and effective port of an http(s) URL."""
    parsed = httpx.URL(url)
    return parsed.host.lower(), parsed.port or _DEFAULT_PORTS.get(parsed.scheme, 0)


def same_host(url: str, other: str) -> bool:
    """True when both URLs name the same host and port."""
    try:
        return host_of(url) == host_of(other)
    except httpx.InvalidURL:
        return False


def under_domains(url: str, domains: Iterable[str]) -> bool:
    """True when the URL is https and its host is one of domains or a subdomain of one."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return False
    host = parsed.host.lower()
    return parsed.scheme == "https" and any(host == d or host.endswith("." + d) for d in domains)


def guarded_client(
    allow_hosts: str, *, timeout: float = 15.0, max_response_bytes: int = 32 * 1024 * 1024
) -> httpx.AsyncClient:
    """A stand-alone client behind the guard (for commands that run without a runtime)."""
    policy = OutboundPolicy.from_setting(allow_hosts, max_response_bytes=max_response_bytes)
    return httpx.AsyncClient(
        timeout=timeout,
        trust_env=False,
        transport=GuardedTransport(httpx.AsyncHTTPTransport(), policy),
    )
