"""Webhooks out: the payload signed as Standard Webhooks says (the `standardwebhooks` package), posted to the address
the SSRF guard checked, without following redirects."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from .address_guard import Refused, Resolver, check_url, resolve_public, system_resolver
from .smtp_sender import SendFailed

__all__ = ["WebhookSender", "signed_headers"]

USER_AGENT = "tpmon-webhooks/0.1"


def signed_headers(secret: str, message_id: str, body: str, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for `body`: webhook-id, webhook-timestamp, webhook-signature."""
    signature = Webhook(secret).sign(message_id, now.astimezone(UTC), body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


class WebhookSender:
    """Posts signed payloads; each post resolves and checks the destination anew."""

    def __init__(self, *, timeout: float = 10.0, resolver: Resolver = system_resolver) -> None:
        self.timeout = timeout
        self.resolver = resolver

    def send(self, url: str, secret: str, message_id: str, payload: dict[str, Any], *, allow_private: bool) -> None:
        """SendFailed (permanent for a refused destination or a 4xx other than 408/429) if not accepted (2xx)."""
        try:
            scheme, host, port = check_url(url)
            address = resolve_public(host, port, allow_private=allow_private, resolver=self.resolver)
        except (ValueError, Refused) as exc:
            raise SendFailed(f"webhook destination {exc}", permanent=True) from None
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        headers = signed_headers(secret, message_id, body, datetime.now(UTC))
        default_port = 443 if scheme == "https" else 80
        headers |= {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "host": host if port == default_port else f"{host}:{port}",
        }
        target = httpx.URL(url).copy_with(host=address)
        extensions = {"sni_hostname": host} if scheme == "https" else {}
        try:
            with httpx.Client(timeout=self.timeout, follow_redirects=False, trust_env=False) as client:
                request = client.build_request("POST", target, content=body.encode(), headers=headers)
                request.extensions.update(extensions)
                response = client.send(request)
        except httpx.HTTPError as exc:
            raise SendFailed(f"webhook {type(exc).__name__}: {exc}"[:300], permanent=False) from None
        if not 200 <= response.status_code < 300:
            permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 409, 425, 429)
            raise SendFailed(f"webhook answered HTTP {response.status_code}", permanent=permanent)
