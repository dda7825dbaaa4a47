"""Typed settings read from `VEXAM_*` environment variables (and an optional `.env`)."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Published so operators can see exactly which values are refused in production.
DEFAULT_SECRET_KEY = "dev-secret-key-change-me"  # noqa: S105 - a known, refused default
DEFAULT_DATA_KEY = "dev-data-key-change-me"


class Environment(StrEnum):
    """Where the server runs: development relaxes the secret checks, nothing else."""

    development = "development"
    test = "test"
    production = "production"


class InsecureSettingsError(RuntimeError):
    """Raised at start-up when production would run with development-only values."""


# The PostgreSQL pool of one process (`core.db.Database`): connections kept, never more, and
# how long a request waits for a free one.
DATABASE_POOL_SIZE = 20
DATABASE_POOL_TIMEOUT_SECONDS = 10.0


class Settings(BaseSettings):
    """Every knob of a vexam process. See the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix="VEXAM_", env_file=".env", extra="ignore", case_sensitive=False
    )

    env: Environment = Environment.production
    data_dir: Path = Path("vexam-data")
    database_url: str = ""  # empty: SQLite file in data_dir
    database_pool_size: int = Field(DATABASE_POOL_SIZE, ge=1)
    database_pool_timeout_seconds: float = Field(DATABASE_POOL_TIMEOUT_SECONDS, gt=0)
    storage_url: str = ""  # empty: folder data_dir/blobs; s3://bucket[/prefix]
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    queue_url: str = ""  # empty: SQLite queue file in data_dir; redis://host:port/db
    queue_name: str = "vexam"

    secret_key: str = DEFAULT_SECRET_KEY
    data_key: str = DEFAULT_DATA_KEY

    base_url: str = "http://127.0.0.1:8000"
    forwarded_allow_ips: str = "127.0.0.1"
    cookie_secure: bool = False
    # Strict-Transport-Security max-age, sent when base_url is https:// or a request came over
    # https (a trusted proxy's X-Forwarded-Proto); 0 never sends it.
    hsts_seconds: int = Field(31536000, ge=0)

    default_timezone: str = "Asia/Shanghai"
    min_client_version: str = "0.0.0"
    client_download_url: str = "https://vexam.example/download"

    sms_sender: str = "console"
    sms_code_ttl_seconds: int = Field(300, ge=30)
    sms_resend_seconds: int = Field(60, ge=1)
    sms_max_wrong_attempts: int = Field(5, ge=1)
    sms_daily_cap_per_phone: int = Field(10, ge=1)
    sms_daily_cap_per_ip: int = Field(50, ge=1)
    sms_daily_cap_per_device: int = Field(10, ge=1)

    password_min_length: int = Field(8, ge=8)
    login_max_failures: int = Field(5, ge=1)
    lockout_minutes: int = Field(15, ge=1)
    # Failed password sign-ins from one client address (any accounts) before it must wait.
    login_max_failures_per_ip: int = Field(50, ge=1)
    login_ip_window_minutes: int = Field(15, ge=1)
    session_days: int = Field(30, ge=1)
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(65536, ge=8)

    payment_provider: str = "sandbox"

    # Identity certification (SPEC §3) and the support service level (SPEC §7).
    id_register: str = "format"
    face_max_attempts: int = Field(3, ge=1)
    liveness_challenge_seconds: int = Field(120, ge=10)
    id_photo_max_bytes: int = Field(8 * 1024 * 1024, ge=64 * 1024)
    exam_season: str = ""  # empty: derived from the date (a season runs September to August)
    support_hours_start: str = "08:00"
    support_hours_end: str = "24:00"
    support_sla_minutes: int = Field(120, ge=1)

    # Resumable uploads (SPEC §5, tus 1.0).
    upload_dir: Path | None = None  # None: data_dir/uploads
    upload_max_bytes: int = Field(20 * 1024**3, ge=1024)  # Tus-Max-Size; 413 above it
    upload_idle_seconds: float = Field(4.0, gt=0)  # a PATCH silent this long is ended
    upload_cors_origins: list[str] = Field(default_factory=list)  # other origins of tus clients
    # Where upload bytes go: "local" (upload_dir, one file per upload), "s3" (a multipart
    # upload in the storage_url bucket, any web process continues any upload), or "auto"
    # (s3 when storage_url is s3://..., else local).
    upload_store: Literal["auto", "local", "s3"] = "auto"
    upload_part_bytes: int = Field(5 * 1024**2, ge=5 * 1024**2)  # S3 part size (S3 minimum 5 MiB)
    upload_lease_seconds: float = Field(30.0, gt=0)  # a PATCH's hold on an upload (S3 store)

    # Media checks after verification (SPEC §6) and playback links (SPEC §8).
    media_sample_seconds: float = Field(1.0, ge=0.2, le=10)  # face audit: one frame per this
    media_embed_seconds: float = Field(3.0, ge=0)  # a face staying in place is re-compared after
    media_transcode: bool = True  # an H.264/AAC MP4 copy of recordings not playable everywhere
    media_max_attempts: int = Field(3, ge=1, le=10)  # media job runs before it is marked failed
    media_link_seconds: int = Field(600, ge=30, le=24 * 3600)  # lifetime of a playback link

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "VEXAM_DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        return value

    @field_validator("support_hours_start", "support_hours_end")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        # Two-digit hours and minutes, so the strings also compare as times; 24:00 is midnight.
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d|24:00", value):
            raise ValueError("support hours look like 08:00 or 24:00")
        return value

    @property
    def is_development(self) -> bool:
        """True for development and test, where default secrets and console SMS are allowed."""
        return self.env is not Environment.production

    @property
    def effective_database_url(self) -> str:
        """The configured database URL, or an SQLite file in the data folder."""
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'vexam.db').resolve()}"

    @property
    def effective_upload_dir(self) -> Path:
        """Where upload files live: the configured folder or data_dir/uploads."""
        return self.upload_dir or self.data_dir / "uploads"

    @property
    def effective_upload_store(self) -> str:
        """The upload store in use, local or s3: as configured, or s3 when the blobs are on S3."""
        if self.upload_store != "auto":
            return self.upload_store
        return "s3" if self.storage_url.strip().lower().startswith("s3://") else "local"

    @property
    def effective_queue_url(self) -> str:
        """The configured queue URL, or an SQLite queue file in the data folder."""
        return self.queue_url or f"sqlite:///{(self.data_dir / 'queue.db').resolve()}"

    def insecure_reasons(self) -> list[str]:
        """Why these settings must not run in production (empty when they may)."""
        reasons = []
        if self.secret_key == DEFAULT_SECRET_KEY or len(self.secret_key) < 32:
            reasons.append("VEXAM_SECRET_KEY is the default or shorter than 32 characters")
        if self.data_key == DEFAULT_DATA_KEY or len(self.data_key) < 32:
            reasons.append("VEXAM_DATA_KEY is the default or shorter than 32 characters")
        if self.sms_sender == "console":
            reasons.append("VEXAM_SMS_SENDER=console prints codes to the log; configure a gateway")
        if self.payment_provider == "sandbox":
            reasons.append("VEXAM_PAYMENT_PROVIDER=sandbox takes no money; configure a gateway")
        return reasons

    def check_safe_to_start(self) -> None:
        """Refuse production start-up with development-only values, naming each one."""
        if self.is_development:
            return
        reasons = self.insecure_reasons()
        if reasons:
            raise InsecureSettingsError(
                "refusing to start in production (VEXAM_ENV=production):\n  - "
                + "\n  - ".join(reasons)
                + "\nSet them, or VEXAM_ENV=development for local use."
            )
