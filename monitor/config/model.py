"""Frozen pydantic models of the config, and the order of its networks' dependencies."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from .taxonomy import DEFAULT_FLOWS, DEFAULT_LINES
from .values import ENV_REF, SLUG, FrozenDict, parse_duration

__all__ = [
    "AdminSettings",
    "ChatChannel",
    "Check",
    "CheckDefaults",
    "ClusterSettings",
    "Dependency",
    "DnsCheck",
    "FlowDef",
    "HttpCheck",
    "HttpConditions",
    "LineDef",
    "Network",
    "Notifications",
    "ProbeCheck",
    "PushCheck",
    "Settings",
    "TcpCheck",
    "TlsCheck",
    "dependency_order",
]

K = TypeVar("K")
V = TypeVar("V")

Seconds = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
Slug = Annotated[str, Field(pattern=SLUG)]
Frozen = Annotated[Mapping[K, V], AfterValidator(FrozenDict)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Label(Model):
    fr: str = Field(min_length=1)
    en: str = Field(min_length=1)


class FlowDef(Model):
    label: Label


class LineDef(Model):
    label: Label
    requires: tuple[str, ...] = Field(min_length=1)  # "a" or "a|b" (either one is enough)
    optional: tuple[str, ...] = ()  # down → the line is at least degraded


class LineOverride(Model):
    requires: tuple[str, ...] | None = Field(default=None, min_length=1)
    optional: tuple[str, ...] | None = None


class CheckDefaults(Model):
    interval: Seconds = 60.0
    timeout: Seconds = 10.0
    failure_threshold: int = Field(default=3, ge=1, le=100)
    success_threshold: int = Field(default=2, ge=1, le=100)


class CheckBase(Model):
    name: Slug
    flow: Slug
    description: str = ""
    interval: Seconds = 60.0
    failure_threshold: int = Field(default=3, ge=1, le=100)
    success_threshold: int = Field(default=2, ge=1, le=100)


class ProbeCheck(CheckBase):
    """A check tpmon measures itself; a push check has neither timeout nor latency threshold."""

    timeout: Seconds = 10.0
    degraded_after: Seconds | None = None


class HeaderCondition(Model):
    name: str = Field(min_length=1)
    equals: str | None = None  # absent: the header must only be present


class JsonCondition(Model):
    path: str = Field(pattern=r"^\$(\.[^.\[\]]+|\[\d+\])*$")  # $.a.b[0].c
    equals: Any


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return pattern


def _status_code(code: Any) -> int | str:
    """A code (`200`, `"404"`) or a class (`"2xx"`)."""
    if isinstance(code, str) and code.strip().isdigit():
        code = int(code)
    if isinstance(code, int) and not isinstance(code, bool):
        if not 100 <= code <= 599:
            raise ValueError(f"status code {code} is not between 100 and 599")
        return code
    if isinstance(code, str) and _STATUS.match(code):
        return code
    shown = f" {code!r}" if isinstance(code, str) and len(code) <= 20 else ""
    raise ValueError(f"status{shown} is neither a code like 200 nor a class like '2xx'")


def _one_or_many(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


_STATUS = re.compile(r"^[1-5]xx$")
StatusCode = Annotated[int | str, BeforeValidator(_status_code)]
Regexes = Annotated[tuple[Annotated[str, AfterValidator(_regex)], ...], BeforeValidator(_one_or_many)]
Texts = Annotated[tuple[str, ...], BeforeValidator(_one_or_many)]


class HttpConditions(Model):
    status: tuple[StatusCode, ...] = ("2xx", "3xx")  # codes or classes like "2xx"
    max_latency: Seconds | None = None
    body_contains: Texts = ()
    body_not_contains: Texts = ()
    body_matches: Regexes = ()
    body_not_matches: Regexes = ()
    json_values: tuple[JsonCondition, ...] = Field(default=(), alias="json")
    headers: tuple[HeaderCondition, ...] = ()
    cert_valid_days: int | None = Field(default=None, ge=0, le=3650)

    def accepts_status(self, code: int) -> bool:
        return any(code == s if isinstance(s, int) else str(code)[0] == s[0] for s in self.status)


class HttpCheck(ProbeCheck):
    kind: Literal["http"]
    url: str = Field(pattern=r"^(https?://|\$\{)")  # may hold ${ENV} references (secrets)
    method: Literal["GET", "HEAD", "POST", "OPTIONS"] = "GET"
    headers: Frozen[str, str] = Field(default_factory=FrozenDict)  # values may hold ${ENV} references
    body: str | None = None
    follow_redirects: bool = True
    max_redirects: int = Field(default=5, ge=0, le=20)
    max_body_bytes: int = Field(default=256 * 1024, ge=0, le=16 * 1024 * 1024)
    tls_verify: bool = True
    ca_file: str | None = None
    reuse_connection: bool = False
    conditions: HttpConditions = HttpConditions()


class TcpCheck(ProbeCheck):
    kind: Literal["tcp"]
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)


class TlsCheck(ProbeCheck):
    kind: Literal["tls"]
    host: str = Field(min_length=1)
    port: int = Field(default=443, ge=1, le=65535)
    server_name: str | None = None
    tls_verify: bool = True
    ca_file: str | None = None
    cert_valid_days: int | None = Field(default=None, ge=0, le=3650)


class DnsCheck(ProbeCheck):
    kind: Literal["dns"]
    host: str = Field(min_length=1)
    family: Literal["any", "ipv4", "ipv6"] = "any"
    expect_addresses: tuple[str, ...] = ()


def _token_reference(value: str) -> str:
    # A malformed reference is reported by the ${VAR} rules of config.rules, once.
    if ENV_REF.fullmatch(value) or "${" in ENV_REF.sub("", value):
        return value
    raise ValueError("must be a ${VAR} reference to an environment variable, never the secret itself")


class PushCheck(CheckBase):
    """A partner reports this flow's health (heartbeat, degraded, down) at least every `interval`.

    With no signal for `missed_after` (default: `stale_after_intervals` × interval) the check is down.
    Before its first signal ever it is unknown. Thresholds apply to reported states as to probe results.
    """

    kind: Literal["push"]
    missed_after: Seconds | None = None
    # a secret the partner may send instead of a `tpmon token create` token, for this check only
    token: Annotated[str, AfterValidator(_token_reference)] | None = None

    @property
    def degraded_after(self) -> None:
        """No latency threshold (not a config key): the partner reports `degraded` itself."""
        return None


Check = Annotated[HttpCheck | TcpCheck | TlsCheck | DnsCheck | PushCheck, Field(discriminator="kind")]


class Dependency(Model):
    """This network's `lines` (all when empty) rely on another network's flow (DESIGN §2).

    Upstream down or partial: each line is at least `impact`; recovering: at least recovering, with the upstream's
    progress (at most `impact`); degraded: at least degraded. `scope` says who is affected, in words
    ("assurés dont le tiers payant est géré par Viamedis"); without it, the members whose tiers payant goes
    through the upstream network.
    """

    network: Slug
    flow: Slug
    lines: tuple[Slug, ...] = ()
    impact: Literal["partial", "down", "degraded"] = "partial"
    scope: Label | None = None

    def covers(self, line: str) -> bool:
        return not self.lines or line in self.lines


class Network(Model):
    name: str = Field(min_length=1, max_length=80)
    kind: Literal["operateur", "reseau_de_soins"]
    website: str | None = Field(default=None, pattern=r"^https?://")
    hotline: str | None = Field(default=None, max_length=40)
    flows: tuple[Slug, ...] | None = Field(default=None, min_length=1)  # the flows it runs; default: all
    lines: tuple[Slug, ...] = Field(min_length=1)
    line_overrides: Frozen[Slug, LineOverride] = Field(default_factory=FrozenDict)
    depends_on: tuple[Dependency, ...] = ()
    checks: tuple[Check, ...] = ()

    def flow_names(self, taxonomy: Mapping[str, FlowDef]) -> tuple[str, ...]:
        """The flows this network runs, in taxonomy order."""
        return tuple(f for f in taxonomy if self.flows is None or f in self.flows)

    def requirements(self, line: str, taxonomy: Mapping[str, LineDef]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(required, optional) flows of `line` on this network, overrides applied.

        Only flows the network runs: an alternative it does not run is dropped ("portail_ps|pec" → "pec"),
        so is an optional flow. The config refuses a required group with none of its flows run.
        """
        base = taxonomy[line]
        override = self.line_overrides.get(line)
        required = override.requires if override and override.requires is not None else base.requires
        optional = override.optional if override and override.optional is not None else base.optional
        if self.flows is None:
            return required, optional
        runs = set(self.flows)
        groups = tuple("|".join(f for f in group.split("|") if f in runs) for group in required)
        return tuple(g for g in groups if g), tuple(f for f in optional if f in runs)


class AdminSettings(Model):
    """The operators' listener (write API, partners' pushes, sign-in, later the console), apart from the public one.

    Its address is read at start only; the other fields follow a reload.
    """

    enabled: bool = True
    host: str = Field(default="127.0.0.1", min_length=1, max_length=253)
    port: int = Field(default=8081, ge=1, le=65535)
    push_on_public: bool = False  # partners may push on the public listener too (token only, no other admin route)
    push_per_minute: int = Field(default=60, ge=1, le=1_000_000)  # accepted pushes per token; bursts of as many
    session_idle: Seconds = 1800.0  # a staff session unused this long ends
    session_lifetime: Seconds = 43200.0  # and ends this long after sign-in, used or not
    secure_cookies: Literal["auto", "always"] = "auto"  # auto: Secure when the request came over HTTPS
    audit_retention_days: int = Field(default=400, ge=30, le=36500)


class ClusterSettings(Model):
    """Several `tpmon serve` on one PostgreSQL (a SQLite file takes one): where this one probes from, and how often
    the instances tell that they live. Read at start only; `tpmon serve --location` overrides the location."""

    location: Slug = "default"  # the instances of one location share its checks; each check is probed once there
    heartbeat: Seconds = Field(default=5.0, ge=0.5, le=300.0)  # an instance silent two heartbeats loses its share


_SCOPE = re.compile(r"^(\*|[a-z0-9][a-z0-9_-]{0,62}(/[a-z0-9][a-z0-9_-]{0,62})?)$")
_ADDRESS = re.compile(r"^[^\s@<>\"]+@[^\s@<>\"]+\.[^\s@<>\"]+$")


def _scope(value: str) -> str:
    if not _SCOPE.match(value):
        raise ValueError("must be *, a network (viamedis) or a network/domain (viamedis/optique)")
    return value


def _address(value: str) -> str:
    if not _ADDRESS.match(value):
        raise ValueError("must be an e-mail address like etat@exemple.fr")
    return value


class ChatChannel(Model):
    """An ops chat channel reached through an Apprise URL (Slack, Teams, Mattermost, Matrix, Telegram…)."""

    name: Slug
    url: str = Field(min_length=1)  # an Apprise URL; its tokens only through ${VAR} references
    scopes: tuple[Annotated[str, AfterValidator(_scope)], ...] = ("*",)  # the rules refuse an empty list


class Notifications(Model):
    """E-mail subscriptions, webhooks and chat channels. Secrets (SMTP, signing) come from the environment."""

    public_url: str = Field(pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")  # the site's address, for the links sent
    sender: Annotated[str, AfterValidator(_address)]  # the From: address of the e-mails
    controller: str = Field(min_length=1, max_length=200)  # the data controller, named by the privacy notice
    contact: str = Field(min_length=3, max_length=200)  # where subscribers exercise their rights
    subscriptions: bool = True  # the public e-mail subscriptions (needs TPMON_SMTP_URL)
    coalesce: Seconds = 120.0  # changes within this window go out in one message per subscriber
    confirm_within: Seconds = 172800.0  # a confirmation link expires (and an unconfirmed address is deleted)
    max_attempts: int = Field(default=8, ge=1, le=50)  # then the delivery is a dead letter
    retry_after: Seconds = 30.0  # the first retry; each next one waits twice as long (at most 1 h)
    webhook_disable_after: Seconds = 432000.0  # a webhook failing this long is disabled
    keep: Seconds = 2592000.0  # sent messages and told events are kept this long, then pruned
    lease: Seconds = 120.0  # how long a sender holds what it claimed: a sender that died is relieved after that
    subscribe_per_client: int = Field(default=10, ge=1, le=10000)  # subscription requests per client per hour
    subscribe_per_address: int = Field(default=3, ge=1, le=100)  # confirmation e-mails per address per hour
    chat: tuple[ChatChannel, ...] = ()


class Settings(Model):
    """The whole validated config. Frozen: a reload builds a new one."""

    timezone: Literal["Europe/Paris"] = "Europe/Paris"
    defaults: CheckDefaults = CheckDefaults()
    stabilization: Seconds = 1800.0
    stale_after_intervals: float = Field(default=3.0, ge=1.0, le=100.0)
    jitter: float = Field(default=0.1, ge=0.0, le=0.5)  # share of each interval
    max_concurrency: int = Field(default=64, ge=1, le=2048)
    raw_retention_days: int = Field(default=30, ge=1, le=3650)  # raw results; ≥ 400 for contractual evidence
    user_agent: str = Field(default="tpmon/0.1 (+status monitor of French tiers-payant networks)", min_length=1)
    flows: Frozen[Slug, FlowDef] = Field(
        default_factory=lambda: FrozenDict({k: FlowDef.model_validate(v) for k, v in DEFAULT_FLOWS.items()})
    )
    lines: Frozen[Slug, LineDef] = Field(
        default_factory=lambda: FrozenDict({k: LineDef.model_validate(v) for k, v in DEFAULT_LINES.items()})
    )
    networks: Frozen[Slug, Network] = Field(min_length=1)
    admin: AdminSettings = AdminSettings()
    cluster: ClusterSettings = ClusterSettings()
    notifications: Notifications | None = None  # absent: nothing is sent, no subscription form
    source: str = Field(default="", exclude=True)  # the file it was loaded from

    def checks(self) -> list[tuple[str, Check]]:
        """Every (network, check) pair, in config order."""
        return [(name, check) for name, network in self.networks.items() for check in network.checks]


def dependency_order(settings: Settings) -> list[str]:
    """Network names ordered so that each comes after the networks it depends on (cycles are broken)."""
    done: dict[str, None] = {}
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in done or name in visiting:
            return
        visiting.add(name)
        for dep in settings.networks[name].depends_on:
            if dep.network in settings.networks:
                visit(dep.network)
        done[name] = None

    for name in settings.networks:
        visit(name)
    return list(done)
