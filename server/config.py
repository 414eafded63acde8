"""Settings from the environment (`TASKER_*`), built once per process and passed down."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the server and the workers; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="TASKER_", extra="ignore")

    database_url: str = "sqlite://./tasker.db"
    broker_url: str | None = None
    handlers_path: str = ""
    examples: bool = False
    environment: str = "development"

    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_algorithms: str = ""
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    health_status_requires_auth: bool = True
    metrics_requires_auth: bool = False

    embedded_worker_threads: int = Field(default=8, ge=1)
    worker_poll_ms: int = Field(default=5, ge=1)
    default_step_timeout: float = Field(default=300.0, gt=0)
    lease_grace_seconds: float = Field(default=15.0, ge=0)
    sweep_interval: float = Field(default=2.0, gt=0)
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
    log_json: bool = False
    log_level: str = "INFO"
    static_dir: Path = Path(__file__).resolve().parent / "static"

    @property
    def handler_dirs(self) -> list[Path]:
        """The directories named by `TASKER_HANDLERS_PATH` (colon-separated)."""
        return [Path(p) for p in self.handlers_path.split(":") if p.strip()]

    @property
    def is_sqlite(self) -> bool:
        """True on the embedded database."""
        return self.database_url.startswith("sqlite")
