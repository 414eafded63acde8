"""Settings from the environment (`TASKER_*`), built once per process and passed down."""

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the server and the workers; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="TASKER_", extra="ignore")

    database_url: str = "sqlite://./tasker.db"
    broker_url: str | None = None
    handlers_path: str = ""
    examples: bool = False
    environment: str = "development"

    # Authentication (docs/security.md), on when a key is set. Secrets are SecretStr so no repr
    # or log of the settings shows them. Keys are PEM text or a path to a PEM file.
    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = None
    jwt_private_key: SecretStr | None = None  # only `tasker token` uses it (RS256/ES256)
    jwt_algorithms: str = ""  # comma-separated; empty: HS256, or inferred from the public key
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway_seconds: float = Field(default=30.0, ge=0, le=300)
    health_status_requires_auth: bool = True
    metrics_requires_auth: bool = False
    # Rate limiting (off unless set), e.g. "100/minute" or "100/minute;2000/hour". Counted per
    # token subject (client address when anonymous) in Redis (this URL, else the broker's) or
    # in process memory.
    rate_limit: str | None = None
    rate_limit_storage_url: str | None = None
    cors_origins: str = ""  # comma-separated origins allowed cross-origin; empty: CORS off

    # Freeze the start-up heap out of the collector's full passes (server.infra.gc_tuning): a server
    # process does this once; a process that builds many apps (a test run) must not.
    freeze_heap: bool = True
    embedded_worker_threads: int = Field(default=8, ge=1)
    worker_poll_ms: int = Field(default=1000, ge=1)
    default_step_timeout: float = Field(default=300.0, gt=0)
    lease_grace_seconds: float = Field(default=15.0, ge=0)
    sweep_interval: float = Field(default=2.0, gt=0)
    schedule_interval: float = Field(default=5.0, gt=0)
    """The longest each process's schedule firer sleeps. It sleeps until the next due tick it
    knows of and is woken at once by a schedule changed in this process, so ticks fire on
    time; this cap bounds how late a schedule changed by another process (which fires it
    itself) is seen here: only a tick within this of the change, with that process gone by
    then, is late, by at most this. Each look is one indexed query."""
    redispatch_after: float = Field(default=10.0, gt=0)
    heartbeat_interval: float = Field(default=5.0, gt=0)
    backoff_base_seconds: float = Field(default=1.0, ge=0)
    backoff_max_seconds: float = Field(default=300.0, ge=0)
    backoff_jitter: float = Field(default=0.25, ge=0, le=1)
    db_pool_max: int = Field(default=10, ge=1)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    graphql_introspection: bool = True
    graphql_max_depth: int = 12
    graphql_max_tokens: int = 5000
    graphql_max_aliases: int = 30
    # Observability (docs/observability.md): probe timeout for /health/ready, when a ready step
    # counts as stuck, and where analytics are cached (default: the broker's Redis; none: in
    # memory).
    health_timeout_seconds: float = Field(default=2.0, gt=0)
    stuck_after_seconds: float = Field(default=300.0, gt=0)
    cache_url: str | None = None
    log_json: bool = False
    # Share of successful requests in the access log (server.infra.access_log); requests
    # answered with 400 or more are always logged.
    access_log_sample: float = Field(default=0.01, ge=0, le=1)
    log_level: str = "INFO"
    static_dir: Path = Path(__file__).resolve().parent / "static"
    # GraphQL work bounds, checked on the parsed document before validation runs (validation
    # is quadratic in fields sharing a response name), and subscriptions per websocket.
    graphql_max_fields: int = Field(default=1000, ge=1)
    graphql_max_same_name_fields: int = Field(default=20, ge=1)
    graphql_max_subscriptions_per_connection: int = Field(default=100, ge=1)

    # Workers: one whose last heartbeat (every `heartbeat_interval`) is older than this, on
    # the database's clock, is dead and its running steps are reclaimed at once, whatever
    # their timeouts. `tasker worker` serves Prometheus metrics on this port (0: none).
    worker_dead_after_seconds: float = Field(default=15.0, gt=0)
    worker_metrics_port: int = Field(default=9191, ge=0, le=65535)
    worker_metrics_host: str = "0.0.0.0"

    @model_validator(mode="after")
    def _dead_after_spans_heartbeats(self) -> "Settings":
        # Fewer than two heartbeat intervals would call a live worker dead for one late beat.
        if self.worker_dead_after_seconds < 2 * self.heartbeat_interval:
            raise ValueError(
                "TASKER_WORKER_DEAD_AFTER_SECONDS must be at least twice TASKER_HEARTBEAT_INTERVAL"
            )
        return self

    # The HTTP edge (docs/security.md). Host names the server answers (comma-separated, `*`:
    # any; empty: the loopback names in open mode, any with authentication on); open mode off
    # loopback (`tasker serve --insecure` sets it); proxies whose
    # X-Forwarded-For/-Proto `tasker serve` trusts (empty: none); how long a rate-limit store
    # may take before the request goes through uncounted.
    allowed_hosts: str = ""
    forwarded_allow_ips: str = ""
    insecure: bool = False
    rate_limit_timeout_seconds: float = Field(default=0.25, gt=0, le=5)

    @property
    def handler_dirs(self) -> list[Path]:
        """The directories named by `TASKER_HANDLERS_PATH` (colon-separated)."""
        return [Path(p) for p in self.handlers_path.split(":") if p.strip()]

    @property
    def is_sqlite(self) -> bool:
        """True on the embedded database."""
        return self.database_url.startswith("sqlite")

    @property
    def auth_enabled(self) -> bool:
        """True when a JWT key is configured; without one the server is open (DESIGN §5.3)."""
        return bool(self.jwt_secret or self.jwt_public_key)

    @property
    def cors_origin_list(self) -> list[str]:
        """The origins named by `TASKER_CORS_ORIGINS` (comma-separated)."""
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]
