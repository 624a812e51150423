"""Frozen pydantic models of the config, and the order of its networks' dependencies."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag

from .taxonomy import DEFAULT_FLOWS, DEFAULT_LINES
from .texts import TextError, _
from .values import ENV_REF, SLUG, FrozenDict, got, parse_duration

__all__ = [
    "AdminSettings",
    "ChatChannel",
    "Check",
    "CheckDefaults",
    "ClusterSettings",
    "Dependency",
    "DnsCheck",
    "FlowDef",
    "FlowTexts",
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
    "WebSettings",
    "dependency_order",
]

K = TypeVar("K")
V = TypeVar("V")

MINUTE, DAY = 60.0, 86400.0


def _at_most(limit: float, shown: str) -> AfterValidator:
    """A duration's upper bound: beyond it a typo, and a scheduler, tick or timer that would break."""

    def check(seconds: float) -> float:
        if seconds > limit:
            raise TextError(_("must be at most {limit} (got {value})", limit=shown, value=_duration_text(seconds)))
        return seconds

    return AfterValidator(check)


def _duration_text(seconds: float) -> str:
    for unit, size in (("d", DAY), ("h", 3600.0), ("m", MINUTE)):
        if seconds < 1e9 and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:.4g}s"


_Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
Seconds = Annotated[_Duration, _at_most(7 * DAY, "7d")]  # stabilization, a push check's wait
Interval = Annotated[_Duration, _at_most(DAY, "1d")]
Timeout = Annotated[_Duration, _at_most(5 * MINUTE, "5m")]  # a probe's timeout, latency thresholds
Retry = Annotated[_Duration, _at_most(3600.0, "1h")]  # a first retry's wait (each next one doubles, up to 1 h)
Month = Annotated[_Duration, _at_most(30 * DAY, "30d")]  # a webhook's failures before it is disabled
Retention = Annotated[_Duration, _at_most(3650 * DAY, "3650d")]  # what is kept, then pruned
Slug = Annotated[str, Field(pattern=SLUG)]
URL_MAX = 2048  # characters of a URL, before ${VAR} references are expanded
Frozen = Annotated[Mapping[K, V], AfterValidator(FrozenDict)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Label(Model):
    fr: str = Field(min_length=1, max_length=200)
    en: str = Field(min_length=1, max_length=200)


def _text_or_labels(value: Any) -> str:
    """Which form a description takes, by its value: a mapping is {fr, en}, anything else one text (so a wrong
    value gets the one error of the form it was meant as, not one per form)."""
    return "tag-labels" if isinstance(value, dict | Description) else "tag-text"


class Description(Label):
    """A check's name on the pages in both languages: as long as a one-text description may be."""

    fr: str = Field(min_length=1, max_length=500)
    en: str = Field(min_length=1, max_length=500)


class FlowTexts(Model):
    """What a flow's failure means at the counter and what a practitioner does meanwhile (DESIGN §1), in both
    languages: the taxonomy gives defaults, a network may override any of them (`flow_texts:`)."""

    when_down: Label | None = None  # "vérification des droits en ligne indisponible"
    advice: Label | None = None  # "utilisez l'attestation papier (carte de tiers payant) et facturez normalement"
    unit: Label | None = None  # one request of it, for "environ 1 prise en charge sur 2 aboutit"
    units: Label | None = None  # the same, plural ("prises en charge"): with `unit`, or neither
    when_refused: Label | None = None  # while it comes back: "en cas de refus, réessayez plus tard ou …"

    def over(self, base: FlowTexts) -> FlowTexts:
        """These texts, each missing one taken from `base`."""
        return FlowTexts(**{name: getattr(self, name) or getattr(base, name) for name in FlowTexts.model_fields})


class FlowDef(FlowTexts):
    label: Label


class LineDef(Model):
    label: Label
    requires: tuple[str, ...] = Field(min_length=1)  # "a" or "a|b" (either one is enough)
    optional: tuple[str, ...] = ()  # down → the line is at least degraded


class LineOverride(Model):
    requires: tuple[str, ...] | None = Field(default=None, min_length=1)
    optional: tuple[str, ...] | None = None


class CheckDefaults(Model):
    interval: Interval = 60.0
    timeout: Timeout = 10.0
    failure_threshold: int = Field(default=3, ge=1, le=100)
    success_threshold: int = Field(default=2, ge=1, le=100)


class CheckBase(Model):
    name: Slug
    flow: Slug
    # its name on the pages: one text for both languages, or {fr: …, en: …}
    description: Annotated[
        Annotated[Annotated[str, Field(max_length=500)], Tag("tag-text")] | Annotated[Description, Tag("tag-labels")],
        Discriminator(_text_or_labels),
    ] = ""
    interval: Interval = 60.0
    failure_threshold: int = Field(default=3, ge=1, le=100)
    success_threshold: int = Field(default=2, ge=1, le=100)

    def title(self, lang: str) -> str:
        """Its name on a page in `lang` ("fr" or "en"): its description, else its name."""
        if isinstance(self.description, Label):
            text: str = getattr(self.description, lang)
            return text
        return self.description or self.name


class ProbeCheck(CheckBase):
    """A check tpmon measures itself; a push check has neither timeout nor latency threshold."""

    timeout: Timeout = 10.0
    degraded_after: Timeout | None = None


class HeaderCondition(Model):
    name: str = Field(min_length=1, max_length=200)
    equals: str | None = Field(default=None, max_length=8192)  # absent: the header must only be present


class JsonCondition(Model):
    path: str = Field(pattern=r"^\$(\.[^.\[\]]+|\[\d+\])*$", max_length=500)  # $.a.b[0].c
    equals: Any


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        raise TextError(_("invalid regular expression: {reason}", reason=str(exc))) from None
    return pattern


def _status_code(code: Any) -> int | str:
    """A code (`200`, `"404"`) or a class (`"2xx"`)."""
    if isinstance(code, str) and code.strip().isdigit():
        code = int(code)
    if isinstance(code, int) and not isinstance(code, bool):
        if not 100 <= code <= 599:
            raise TextError(_("status code {code} is not between 100 and 599", code=code))
        return code
    if isinstance(code, str) and _STATUS.match(code):
        return code
    if isinstance(code, str) and len(code) <= 20:
        raise TextError(_("status {code!r} is neither a code like 200 nor a class like '2xx'", code=code))
    raise TextError(_("status is neither a code like 200 nor a class like '2xx'"))


def _one_or_many(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


_STATUS = re.compile(r"^[1-5]xx$")
StatusCode = Annotated[int | str, BeforeValidator(_status_code)]
Regexes = Annotated[
    tuple[Annotated[str, Field(max_length=1000), AfterValidator(_regex)], ...],
    BeforeValidator(_one_or_many),
    Field(max_length=50),
]
Texts = Annotated[
    tuple[Annotated[str, Field(max_length=1000)], ...], BeforeValidator(_one_or_many), Field(max_length=50)
]


class HttpConditions(Model):
    status: tuple[StatusCode, ...] = Field(default=("2xx", "3xx"), max_length=50)  # codes or classes like "2xx"
    max_latency: Timeout | None = None
    body_contains: Texts = ()
    body_not_contains: Texts = ()
    body_matches: Regexes = ()
    body_not_matches: Regexes = ()
    json_values: tuple[JsonCondition, ...] = Field(default=(), alias="json", max_length=50)
    headers: tuple[HeaderCondition, ...] = Field(default=(), max_length=50)
    cert_valid_days: int | None = Field(default=None, ge=0, le=3650)

    def accepts_status(self, code: int) -> bool:
        return any(code == s if isinstance(s, int) else str(code)[0] == s[0] for s in self.status)


class HttpCheck(ProbeCheck):
    kind: Literal["http"]
    url: str = Field(pattern=r"^(https?://|\$\{)", max_length=URL_MAX)  # may hold ${ENV} references (secrets)
    method: Literal["GET", "HEAD", "POST", "OPTIONS"] = "GET"
    # values may hold ${ENV} references
    headers: Frozen[Annotated[str, Field(max_length=200)], Annotated[str, Field(max_length=8192)]] = Field(
        default_factory=FrozenDict, max_length=50
    )
    body: str | None = Field(default=None, max_length=65536)
    follow_redirects: bool = True
    max_redirects: int = Field(default=5, ge=0, le=20)
    max_body_bytes: int = Field(default=256 * 1024, ge=0, le=16 * 1024 * 1024)
    tls_verify: bool = True
    ca_file: str | None = Field(default=None, max_length=4096)
    reuse_connection: bool = False
    conditions: HttpConditions = HttpConditions()


class TcpCheck(ProbeCheck):
    kind: Literal["tcp"]
    host: str = Field(min_length=1, max_length=1024)
    port: int = Field(ge=1, le=65535)


class TlsCheck(ProbeCheck):
    kind: Literal["tls"]
    host: str = Field(min_length=1, max_length=1024)
    port: int = Field(default=443, ge=1, le=65535)
    server_name: str | None = Field(default=None, max_length=1024)
    tls_verify: bool = True
    ca_file: str | None = Field(default=None, max_length=4096)
    cert_valid_days: int | None = Field(default=None, ge=0, le=3650)


class DnsCheck(ProbeCheck):
    kind: Literal["dns"]
    host: str = Field(min_length=1, max_length=1024)
    family: Literal["any", "ipv4", "ipv6"] = "any"
    expect_addresses: tuple[Annotated[str, Field(max_length=64)], ...] = Field(default=(), max_length=64)


def _token_reference(value: str) -> str:
    # A malformed reference is reported by the ${VAR} rules of config.rules, once.
    if ENV_REF.fullmatch(value) or "${" in ENV_REF.sub("", value):
        return value
    raise TextError(_("must be a ${{VAR}} reference to an environment variable, never the secret itself"))


class PushCheck(CheckBase):
    """A partner reports this flow's health (heartbeat, degraded, down) at least every `interval`.

    With no signal for `missed_after` (default: `stale_after_intervals` × interval) the check is down.
    Before its first signal ever it is unknown. Thresholds apply to reported states as to probe results.
    """

    kind: Literal["push"]
    missed_after: Seconds | None = None  # at most 7 days
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
    website: str | None = Field(default=None, pattern=r"^https?://", max_length=URL_MAX)
    hotline: str | None = Field(default=None, max_length=40)
    flows: tuple[Slug, ...] | None = Field(default=None, min_length=1)  # the flows it runs; default: all
    lines: tuple[Slug, ...] = Field(min_length=1)
    line_overrides: Frozen[Slug, LineOverride] = Field(default_factory=FrozenDict)
    depends_on: tuple[Dependency, ...] = ()
    flow_texts: Frozen[Slug, FlowTexts] = Field(default_factory=FrozenDict)  # over the taxonomy's, per flow
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


_HOST = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def _host_name(value: str) -> str:
    """A host name or an IP address, as the Host header of a request may name it; lowercased."""
    host = value.strip().lower().removeprefix("[").removesuffix("]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOST.match(host):
        raise TextError(
            _(
                "must be a host name like etat.exemple.fr or an IP address, without scheme or port{got}",
                got=got(value, 60),
            )
        )
    return host


def _origin(value: str) -> str:
    """`https://etat.exemple.fr[:port]`: the origin every absolute URL of the public site starts with."""
    shown = got("", 0) if "@" in value else got(value, 60)  # never echo what may be a password
    problem = TextError(
        _("must be the site's public origin, like https://etat.exemple.fr (http or https, no path){got}", got=shown)
    )
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise problem from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise problem
    if parts.query or parts.fragment or parts.username is not None or parts.password is not None:
        raise problem
    host = _host_name(parts.hostname)
    bracketed = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{bracketed}" + (f":{port}" if port is not None and port != default else "")


class WebSettings(Model):
    """The public site's address, and the web listener's limits (read when `tpmon serve` starts, not on reload)."""

    public_url: Annotated[str, AfterValidator(_origin)] | None = None  # absolute URLs of feeds and JSON documents
    allowed_hosts: tuple[Annotated[str, AfterValidator(_host_name)], ...] = ()  # without public_url
    max_connections: int = Field(default=2048, ge=16, le=65536)  # lowered to what file descriptors allow
    max_header_bytes: int = Field(default=16384, ge=2048, le=1048576)
    header_timeout: Annotated[Seconds, Field(le=300)] = 10.0
    keepalive_timeout: Annotated[Seconds, Field(le=300)] = 5.0
    send_timeout: Annotated[Seconds, Field(le=3600)] = 30.0
    # a folder `tpmon serve` keeps the static export in, within a second of every change (needs public_url)
    publish_dir: str | None = Field(default=None, min_length=1, max_length=4096, pattern=r"^[^\x00]+$")


class AdminSettings(Model):
    """The operators' listener (write API, partners' pushes, sign-in, the console), apart from the public one.

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


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise TextError(_("must be an IP address of this machine, like 192.0.2.10 or 2001:db8::10")) from None


class LocationSettings(Model):
    """What a location probes from: the local address its probes' connections leave from (None: the system's)."""

    source_address: Annotated[str, AfterValidator(_ip_address)] | None = None


class ClusterSettings(Model):
    """Several `tpmon serve` on one PostgreSQL (a SQLite file takes one): where this one probes from, and how often
    the instances tell that they live. Read at start only; `tpmon serve --location` overrides the location.

    Each location probes every check; a check's published verdict combines the locations' (`engine/quorum.py`):
    down only when `quorum` locations see it down (default: a majority of those with a fresh result)."""

    location: Slug = "default"  # the instances of one location share its checks; each check is probed once there
    heartbeat: Seconds = Field(default=5.0, ge=0.5, le=300.0)  # an instance silent two heartbeats loses its share
    quorum: int | None = Field(default=None, ge=1, le=50)  # locations that must see a check down (None: majority)
    locations: Frozen[Slug, LocationSettings] = Field(default_factory=FrozenDict)  # settings of each location

    def source_address(self, location: str) -> str | None:
        """The local address the probes of `location` leave from (None: the system chooses)."""
        found = self.locations.get(location)
        return found.source_address if found is not None else None


_SCOPE = re.compile(r"^(\*|[a-z0-9][a-z0-9_-]{0,62}(/[a-z0-9][a-z0-9_-]{0,62})?)$")
_ADDRESS = re.compile(r"^[^\s@<>\"]+@[^\s@<>\"]+\.[^\s@<>\"]+$")


def _scope(value: str) -> str:
    if not _SCOPE.match(value):
        raise TextError(_("must be *, a network (viamedis) or a network/domain (viamedis/optique)"))
    return value


def _address(value: str) -> str:
    if not _ADDRESS.match(value):
        raise TextError(_("must be an e-mail address like etat@exemple.fr"))
    return value


class ChatChannel(Model):
    """An ops chat channel reached through an Apprise URL (Slack, Teams, Mattermost, Matrix, Telegram…)."""

    name: Slug
    url: str = Field(min_length=1)  # an Apprise URL; its tokens only through ${VAR} references
    scopes: tuple[Annotated[str, AfterValidator(_scope)], ...] = ("*",)  # the rules refuse an empty list


class Notifications(Model):
    """E-mail subscriptions, webhooks and chat channels. Secrets (SMTP, signing) come from the environment."""

    # the site's address, for the links sent; left out: web.public_url (one of the two is required)
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    sender: Annotated[str, AfterValidator(_address)]  # the From: address of the e-mails
    controller: str = Field(min_length=1, max_length=200)  # the data controller, named by the privacy notice
    contact: str = Field(min_length=3, max_length=200)  # where subscribers exercise their rights
    subscriptions: bool = True  # the public e-mail subscriptions (needs TPMON_SMTP_URL)
    coalesce: Seconds = 120.0  # changes within this window go out in one message per subscriber
    confirm_within: Seconds = 172800.0  # a confirmation link expires (and an unconfirmed address is deleted)
    max_attempts: int = Field(default=8, ge=1, le=50)  # then the delivery is a dead letter
    retry_after: Retry = 30.0  # the first retry; each next one waits twice as long (at most 1 h)
    webhook_disable_after: Month = 432000.0  # a webhook failing this long is disabled
    keep: Retention = 2592000.0  # sent messages and told events are kept this long, then pruned
    lease: Seconds = 120.0  # how long a sender holds what it claimed: a sender that died is relieved after that
    subscribe_per_client: int = Field(default=10, ge=1, le=10000)  # subscription requests per client per hour
    subscribe_per_address: int = Field(default=3, ge=1, le=100)  # confirmation e-mails per address per hour
    chat: tuple[ChatChannel, ...] = ()


class Settings(Model):
    """The whole validated config. Frozen: a reload builds a new one."""

    timezone: Literal["Europe/Paris"] = "Europe/Paris"
    defaults: CheckDefaults = CheckDefaults()
    stabilization: Seconds = 1800.0  # at most 7 days
    stale_after_intervals: float = Field(default=3.0, ge=1.0, le=100.0)
    jitter: float = Field(default=0.1, ge=0.0, le=0.5)  # share of each interval
    max_concurrency: int = Field(default=64, ge=1, le=2048)
    raw_retention_days: int = Field(default=30, ge=1, le=3650)  # raw results; ≥ 400 for contractual evidence
    user_agent: str = Field(
        default="tpmon/0.1 (+status monitor of French tiers-payant networks)", min_length=1, max_length=200
    )
    web: WebSettings = WebSettings()
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

    def links_base(self) -> str:
        """The site's address in the links sent (e-mails, webhooks): `notifications.public_url`, else
        `web.public_url`, without a trailing slash; "" without notifications (the rules require one of them)."""
        if self.notifications is None:
            return ""
        return (self.notifications.public_url or self.web.public_url or "").rstrip("/")

    def checks(self) -> list[tuple[str, Check]]:
        """Every (network, check) pair, in config order."""
        return [(name, check) for name, network in self.networks.items() for check in network.checks]

    def flow_texts(self, network: str, flow: str) -> FlowTexts:
        """What `flow`'s failure means and what to do, on `network`: its own texts over the taxonomy's."""
        base = self.flows[flow]
        found = self.networks[network].flow_texts.get(flow)
        return found.over(base) if found is not None else base


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
