"""Ops chat channels through Apprise URLs (Slack, Teams, Mattermost, Matrix, Telegram, a JSON endpoint…): no
hand-written provider. `${VAR}` references in a URL are expanded from the environment when sending, never stored."""

from __future__ import annotations

from collections.abc import Mapping

from ..config import ChatChannel
from ..config.values import ENV_REF
from .smtp_sender import SendFailed

__all__ = ["ChatSender"]


class ChatSender:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def send(self, channel: ChatChannel, title: str, body: str) -> None:
        """SendFailed if Apprise does not know the URL (permanent) or the service did not take the message."""
        import apprise  # here, not at the top: ~17 MiB and ~0.2 s of `serve`'s start, for a tpmon without chat

        url = ENV_REF.sub(lambda match: self.environ.get(match.group(1), ""), channel.url)
        notifier = apprise.Apprise()
        if not notifier.add(url):
            raise SendFailed(f"chat {channel.name}: not a URL Apprise knows", permanent=True)
        if not notifier.notify(body=body, title=title):
            raise SendFailed(f"chat {channel.name}: the service did not take the message", permanent=False)
