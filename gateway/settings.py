"""One frozen settings object, read once from the environment and validated at start.

Every variable is documented in the README's configuration table. A bad value raises
`SettingsError` naming the variable, before anything is started.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_HOST = "127.0.0.1"  # loopback by default: exposing the gateway is a deliberate choice
DEFAULT_PORT = 8080
DEFAULT_DATA_DIR = ".dni-data"  # relative to the working directory: the demo stays in the checkout
MAX_BODY_BYTES = 1024 * 1024  # admin imports of a few thousand numbers fit; swap bodies are < 8 KiB
SWAP_RATE_PER_MINUTE = 120  # a person browsing makes well under 2 page loads a second
FLUSH_INTERVAL_S = 0.2  # write-behind batch period: design.md says every ~100-250 ms
SIP_RATE_PER_SOURCE = 5000  # requests/s one trunk address may send: above the 4,000/s bench
SHUTDOWN_GRACE_S = 10.0  # in-flight requests get this long after SIGTERM (k8s default is 30 s)
# An HTTP connection that is idle, or that has not finished sending its request line and
# headers (a slowloris trickling a byte at a time), is closed after this long. Above the 60 s
# idle timeout of common load balancers, so they never reuse a connection we are closing.
HTTP_IDLE_TIMEOUT_S = 75.0
LEASE_TTL_S = 10.0  # scale-out: a dead process's numbers go to the others this long after
CLUSTER_POLL_S = 0.2  # scale-out: how often a process reads what the others wrote
LEND_WAIT_S = 0.15  # scale-out: the longest a swap waits for another process to lend a number


class SettingsError(Exception):
    """A setting is missing or invalid; `variable` names the environment variable."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    admin_key: str | None = None
    public_url: str | None = None
    twilio_auth_tokens: tuple[str, ...] = ()
    signalwire_signing_keys: tuple[str, ...] = ()
    log_format: str = "console"
    log_level: str = "info"
    max_body_bytes: int = MAX_BODY_BYTES
    swap_rate_per_minute: int = SWAP_RATE_PER_MINUTE
    flush_interval_s: float = FLUSH_INTERVAL_S
    shutdown_grace_s: float = SHUTDOWN_GRACE_S
    http_idle_timeout_s: float = HTTP_IDLE_TIMEOUT_S
    trusted_proxies: tuple[str, ...] = ()
    sip_host: str | None = None
    sip_port: int | None = None
    sip_trunks: tuple[str, ...] = ()
    sip_termination: str | None = None
    sip_unknown_policy: str = "reject"
    sip_history_info: bool = False
    sip_rate_per_source: int = SIP_RATE_PER_SOURCE
    spool_fsync_before_answer: bool = False
    cluster: bool = False  # several processes share the database (leases, following)
    lease_ttl_s: float = LEASE_TTL_S
    cluster_poll_s: float = CLUSTER_POLL_S
    lend_wait_s: float = LEND_WAIT_S
    worker_index: int | None = None  # set by `serve --workers N` for each worker
    reuse_port: bool = False  # share the HTTP and SIP ports with sibling workers
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def spool_dir(self) -> Path:
        """One spool per worker slot: a restarted worker replays what its predecessor left."""
        base = self.data_dir / "spool"
        return base if self.worker_index is None else base / f"w{self.worker_index}"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(name, f"expected an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(name, f"must be between {lo} and {hi}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(name, f"expected a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(name, f"must be between {lo} and {hi}, got {value}")
    return value


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in env.get(name, "").split(",") if p.strip())


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "") or default
    if value not in choices:
        raise SettingsError(name, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not parts.netloc:
        raise SettingsError(name, f"expected a {'/'.join(schemes)} URL, got {raw!r}")
    return raw.rstrip("/") if name == "DNI_PUBLIC_URL" else raw


def _cidrs(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    values = _list(env, name)
    for v in values:
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError:
            raise SettingsError(name, f"{v!r} is not an IP address or CIDR") from None
    return values


def _admin_key(env: Mapping[str, str]) -> str | None:
    key = env.get("DNI_ADMIN_KEY") or None
    if key is not None and len(key) < 16:
        raise SettingsError("DNI_ADMIN_KEY", "must be at least 16 characters")
    return key


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise `SettingsError` naming the first bad variable."""
    env = os.environ if env is None else env
    # Unset: no SIP listener. 0: an ephemeral port (tests); the bound port is logged.
    sip_port = None if not env.get("DNI_SIP_PORT") else _int(env, "DNI_SIP_PORT", 0, 0, 65535)
    return Settings(
        database_url=_url(env, "DATABASE_URL", ("postgres", "postgresql")),
        data_dir=Path(env.get("DNI_DATA_DIR") or DEFAULT_DATA_DIR),
        host=env.get("DNI_HOST") or DEFAULT_HOST,
        port=_int(env, "DNI_PORT", DEFAULT_PORT, 0, 65535),
        admin_key=_admin_key(env),
        public_url=_url(env, "DNI_PUBLIC_URL", ("http", "https")),
        twilio_auth_tokens=_list(env, "DNI_TWILIO_AUTH_TOKEN"),
        signalwire_signing_keys=_list(env, "DNI_SIGNALWIRE_SIGNING_KEY"),
        log_format=_choice(env, "DNI_LOG_FORMAT", "console", ("console", "json")),
        log_level=_choice(env, "DNI_LOG_LEVEL", "info", ("debug", "info", "warning", "error")),
        max_body_bytes=_int(env, "DNI_MAX_BODY_BYTES", MAX_BODY_BYTES, 1024, 64 * 1024 * 1024),
        swap_rate_per_minute=_int(env, "DNI_SWAP_RATE", SWAP_RATE_PER_MINUTE, 1, 1_000_000),
        flush_interval_s=_float(env, "DNI_FLUSH_INTERVAL", FLUSH_INTERVAL_S, 0.01, 10.0),
        shutdown_grace_s=_float(env, "DNI_SHUTDOWN_GRACE", SHUTDOWN_GRACE_S, 0.0, 300.0),
        http_idle_timeout_s=_float(env, "DNI_HTTP_IDLE_TIMEOUT", HTTP_IDLE_TIMEOUT_S, 1.0, 3600.0),
        trusted_proxies=_cidrs(env, "DNI_TRUSTED_PROXIES"),
        sip_host=env.get("DNI_SIP_HOST") or None,
        sip_port=sip_port,
        sip_trunks=_cidrs(env, "DNI_SIP_TRUNKS"),
        sip_termination=env.get("DNI_SIP_TERMINATION") or None,
        sip_unknown_policy=_choice(env, "DNI_SIP_UNKNOWN", "reject", ("reject", "drop")),
        sip_history_info=_choice(env, "DNI_SIP_HISTORY_INFO", "off", ("on", "off")) == "on",
        sip_rate_per_source=_int(env, "DNI_SIP_RATE", SIP_RATE_PER_SOURCE, 1, 1_000_000),
        spool_fsync_before_answer=_choice(env, "DNI_SPOOL_FSYNC", "background",
                                          ("background", "before_answer")) == "before_answer",
        cluster=_choice(env, "DNI_CLUSTER", "off", ("on", "off")) == "on",
        lease_ttl_s=_float(env, "DNI_LEASE_TTL", LEASE_TTL_S, 3.0, 600.0),
        cluster_poll_s=_float(env, "DNI_CLUSTER_POLL", CLUSTER_POLL_S, 0.01, 10.0),
        lend_wait_s=_float(env, "DNI_LEND_WAIT", LEND_WAIT_S, 0.01, 5.0),
        worker_index=(None if not env.get("DNI_WORKER_INDEX")
                      else _int(env, "DNI_WORKER_INDEX", 0, 0, 1023)),
        reuse_port=_choice(env, "DNI_REUSE_PORT", "off", ("on", "off")) == "on",
    )
