"""A cache of HTTP clients and SSL contexts, one per TLS setting, and of the HTTP probe's request templates."""

from __future__ import annotations

import functools
import ssl
from http.cookiejar import CookieJar, DefaultCookiePolicy
from types import TracebackType
from typing import Any, TypeVar

import httpx

__all__ = ["HttpClients", "Shared", "default_tls_context", "tls_context"]

# Long enough to outlive a check interval: the only point of a keep-alive client is reuse across probes.
_KEEPALIVE_EXPIRY = 600.0

_T = TypeVar("_T")


def tls_context(verify: bool = True, ca_file: str | None = None) -> ssl.SSLContext:
    """A client SSL context trusting the system CAs, or only `ca_file`'s, or nothing when not `verify`;
    it offers HTTP/1.1 by ALPN (as httpcore does on the contexts it is given).

    Raises OSError (ssl.SSLError included) when `ca_file` cannot be loaded.
    """
    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=ca_file)
    context.set_alpn_protocols(["http/1.1"])
    return context


@functools.cache
def default_tls_context() -> ssl.SSLContext:
    """The system CAs' context, built once per process (for probe contexts without an HttpClients)."""
    return tls_context()


class Shared:
    """One object for every equal value it is given (header items, methods, addresses): the targets of 10,000
    checks sending the same headers hold one copy of them (≈ 1.1 kB less per check). Values only, never a key to
    anything: past `limit` values it starts afresh (a config reloaded many times), which costs sharing, not
    correctness."""

    def __init__(self, limit: int = 100_000) -> None:
        self._values: dict[Any, Any] = {}
        self._limit = limit

    def __call__(self, value: _T) -> _T:
        found = self._values.get(value)
        if found is None:
            if len(self._values) >= self._limit:
                self._values.clear()
            found = self._values[value] = value
        return found

    def __len__(self) -> int:
        return len(self._values)


class HttpClients:
    """Builds and caches one `httpx.AsyncClient` per (verify, ca_file, keep_alive), and their SSL contexts.

    Building a client costs ~25 ms of CPU (the SSL context), so probes never build one: the
    composition root owns one HttpClients, puts `clients.get()` (the default client: system CAs,
    no keep-alive) in `ProbeContext.http` and the HttpClients itself in `ProbeContext.clients`,
    and closes it with `aclose()` at shutdown. Clients keep no cookies (a probe is stateless; the
    HTTP probe carries cookies across its own redirects itself), ignore proxy environment
    variables, speak HTTP/1.1 only and have no connection limit (the scheduler bounds concurrency).
    The HTTP probe sends through a client only with `reuse_connection`; otherwise it opens its own
    connection (wire.py) with the cached SSL context, and keeps its per-check request templates in
    `templates` (http.py owns their type and key), the parts equal across templates once in `shared`
    (`Shared`).
    """

    def __init__(self, *, timeout: float = 30.0) -> None:
        self._timeout = timeout
        self._contexts: dict[tuple[bool, str | None], ssl.SSLContext] = {}
        self._clients: dict[tuple[bool, str | None, bool, str | None], httpx.AsyncClient] = {}
        self.templates: dict[Any, Any] = {}
        self.shared = Shared()

    def ssl_context(self, verify: bool = True, ca_file: str | None = None) -> ssl.SSLContext:
        """The cached SSL context for these settings; raises OSError when `ca_file` cannot be loaded."""
        key = (verify, ca_file if verify else None)
        context = self._contexts.get(key)
        if context is None:
            context = self._contexts[key] = tls_context(*key)
        return context

    def get(
        self, *, verify: bool = True, ca_file: str | None = None, keep_alive: bool = False, source: str | None = None
    ) -> httpx.AsyncClient:
        """The cached client for these settings; without arguments, the default one. With `source`, its
        connections leave from that local address."""
        key = (verify, ca_file if verify else None, keep_alive, source)
        client = self._clients.get(key)
        if client is None:
            limits = httpx.Limits(
                max_connections=None,
                max_keepalive_connections=None if keep_alive else 0,
                keepalive_expiry=_KEEPALIVE_EXPIRY if keep_alive else 0.0,
            )
            transport = None
            if source is not None:  # the client's own settings, on a transport bound to `source`
                transport = httpx.AsyncHTTPTransport(
                    verify=self.ssl_context(verify, ca_file),
                    http2=False,
                    limits=limits,
                    trust_env=False,
                    local_address=source,
                )
            client = self._clients[key] = httpx.AsyncClient(
                transport=transport,
                verify=self.ssl_context(verify, ca_file),
                http2=False,
                trust_env=False,
                limits=limits,
                timeout=self._timeout,
                follow_redirects=False,
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            )
        return client

    async def aclose(self) -> None:
        """Close every client built so far."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def __aenter__(self) -> HttpClients:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
