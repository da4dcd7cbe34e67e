"""Typed configuration for OpenClass Nexus, read from the environment and `.env`.

Variable names are the ones users already know from the seed project (EMBEDDING_STRATEGY,
BEDROCK_REGION, ...). Every field is mirrored, with the same default, in `.env.example`.
Nothing here is read at import time: call `Settings()` (or `load_settings()`) where needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.paths import DataDirLayout
from engine.settings.aws import AwsSettings
from engine.util import parse_duration


class Settings(DataDirLayout, AwsSettings, BaseSettings):
    """All settings of the engine. Field aliases are the environment variable names; the AWS
    fields come from `engine.settings.aws.AwsSettings`, and where each part of the data dir
    lives from `engine.paths.DataDirLayout`."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
        case_sensitive=False,
    )

    # --- storage layout -------------------------------------------------------------------
    data_dir: Path = Field(
        Path("data"), alias="NEXUS_DATA_DIR", description="Holds inbox, database, logs, chroma."
    )
    inbox_dir_override: Path | None = Field(
        None, alias="NEXUS_INBOX_DIR", description="Watched folder; default <data_dir>/inbox."
    )
    log_level: str = Field("INFO", alias="NEXUS_LOG_LEVEL")

    # --- embeddings ------------------------------------------------------------------------
    embedding_strategy: Literal["bedrock", "local", "hybrid"] = Field(
        "local", alias="EMBEDDING_STRATEGY"
    )
    fallback_enabled: bool = Field(
        True, alias="FALLBACK_ENABLED", description="hybrid: fall back to local embeddings."
    )
    bedrock_region: str = Field(
        "", alias="BEDROCK_REGION", description="Empty = the AWS region (see AWS_REGION)."
    )
    bedrock_model_id: str = Field("amazon.titan-embed-text-v2:0", alias="BEDROCK_MODEL_ID")
    bedrock_dimensions: int = Field(
        1024,
        alias="BEDROCK_DIMENSIONS",
        description="Titan v2: 256, 512 or 1024; Cohere Multilingual v3: 1024; Cohere v4: "
        "256, 512, 1024 or 1536",
    )
    bedrock_normalize: bool = Field(True, alias="BEDROCK_NORMALIZE")
    bedrock_concurrency: int = Field(
        8,
        ge=1,
        le=64,
        alias="BEDROCK_CONCURRENCY",
        description="Most InvokeModel calls in flight; adapts below this (AIMD) on throttling.",
    )
    bedrock_max_rpm: int = Field(
        1500,
        ge=0,
        alias="BEDROCK_MAX_RPM",
        description="Most InvokeModel requests per minute (the account quota); 0 = no limit.",
    )
    bedrock_max_attempts: int = Field(
        5, ge=1, alias="BEDROCK_MAX_ATTEMPTS", description="Tries per text while throttled."
    )
    bedrock_timeout_s: float = Field(10.0, gt=0, alias="BEDROCK_TIMEOUT_S")
    bedrock_retry_after_s: float = Field(
        300.0,
        ge=0,
        alias="BEDROCK_RETRY_AFTER_S",
        description="hybrid: after a fallback, how long before Bedrock is tried again.",
    )
    bedrock_batch_role_arn: str = Field(
        "",
        alias="BEDROCK_BATCH_ROLE_ARN",
        description="Service role a batch inference job runs as (reads and writes S3_BUCKET_NAME).",
    )
    bedrock_batch_min_chunks: int = Field(
        0,
        ge=0,
        alias="BEDROCK_BATCH_MIN_CHUNKS",
        description=(
            "Embed a document of at least this many chunks with one batch inference job (JSONL "
            "in S3) instead of InvokeModel calls; 0 = off. Bedrock refuses jobs below its "
            "minimum record count (1,000), so use 1000 or more against real AWS."
        ),
    )
    bedrock_batch_poll_s: float = Field(
        60.0, gt=0, alias="BEDROCK_BATCH_POLL_S", description="Seconds between job status polls."
    )
    bedrock_batch_timeout_h: float = Field(
        24.0,
        gt=0,
        alias="BEDROCK_BATCH_TIMEOUT_H",
        description="Hours to wait for a batch job, counted from its creation, across restarts.",
    )
    local_embedding_model: str = Field(
        "",
        alias="LOCAL_EMBEDDING_MODEL",
        description=(
            "empty = the model recorded for this data dir (new: use-multilingual-v3; built "
            "before the record, CUDA or a LOCAL_EMBEDDING_BACKEND: all-minilm-l6-v2); "
            "use-multilingual-v3, all-minilm-l6-v2, multilingual-e5-small, use-e5-ensemble; "
            "else a sentence-transformers model path or name."
        ),
    )
    local_embedding_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", alias="LOCAL_EMBEDDING_DEVICE"
    )
    local_embedding_backend: Literal["auto", "openvino", "onnx-int8", "onnx", "torch"] = Field(
        "auto",
        alias="LOCAL_EMBEDDING_BACKEND",
        description=(
            "auto = OpenVINO on CPU (int8 ONNX Runtime without it), sentence-transformers "
            "(torch) on CUDA; onnx = fp32 ONNX; a sentence-transformers LOCAL_EMBEDDING_MODEL "
            "always uses torch, use-multilingual-v3 its own numpy encoder."
        ),
    )
    embedding_batch_size: int = Field(32, ge=1, alias="EMBEDDING_BATCH_SIZE")

    # --- chunking and extraction limits -------------------------------------------------------
    chunk_size: int = Field(800, ge=100, alias="CHUNK_SIZE")
    chunk_overlap: int = Field(100, ge=0, alias="CHUNK_OVERLAP")
    max_file_mb: float = Field(200.0, gt=0, alias="MAX_FILE_MB")
    max_pages: int = Field(2000, ge=1, alias="MAX_PAGES")
    extract_timeout_s: float = Field(120.0, gt=0, alias="EXTRACT_TIMEOUT_S")
    extract_memory_mb: int = Field(2048, ge=128, alias="EXTRACT_MEMORY_MB")
    max_page_chars: int = Field(
        100_000,
        ge=1,
        alias="MAX_PAGE_CHARS",
        description="Text bombs: a page with more characters of text refuses the file.",
    )
    max_file_chars: int = Field(
        5_000_000,
        ge=1,
        alias="MAX_FILE_CHARS",
        description="Text bombs: a file with more characters of text is refused (too_large).",
    )
    ocr_enabled: bool = Field(
        True,
        alias="OCR_ENABLED",
        description="Read pages without a text layer (scans) with Tesseract OCR, offline.",
    )
    ocr_languages: str = Field(
        "ind+eng",
        pattern=r"^[a-z_]+(\+[a-z_]+)*$",
        alias="OCR_LANGUAGES",
        description="Tesseract languages joined by '+'; each needs its tesseract-ocr-<lang>.",
    )
    ocr_dpi: int = Field(
        200, ge=72, le=600, alias="OCR_DPI", description="Resolution scanned pages are OCR'd at."
    )
    ocr_page_timeout_s: float = Field(
        60.0,
        gt=0,
        alias="OCR_PAGE_TIMEOUT_S",
        description="Most seconds OCR may spend on one page; a slower page is left out.",
    )

    # --- search ---------------------------------------------------------------------------
    search_mode: Literal["hybrid", "vector", "lexical"] = Field(
        "hybrid", alias="SEARCH_MODE", description="Default mode of `nexus search` and the panel."
    )
    fusion_vector_weight: float | None = Field(
        None,
        ge=0,
        alias="FUSION_VECTOR_WEIGHT",
        description="hybrid: weight of vector similarity (empty = chosen for the model).",
    )
    fusion_lexical_weight: float | None = Field(
        None,
        ge=0,
        alias="FUSION_LEXICAL_WEIGHT",
        description="hybrid: weight of BM25 (empty = chosen for the model).",
    )
    search_candidates: int = Field(
        30, ge=1, alias="SEARCH_CANDIDATES", description="hybrid: candidates taken from each side."
    )
    search_batch_max: int = Field(
        16,
        ge=1,
        alias="SEARCH_BATCH_MAX",
        description="Most concurrent questions whose vector side is answered together"
        " (one encoder call, one query per collection); 1 = every question alone.",
    )
    search_batch_encoder: bool = Field(
        True,
        alias="SEARCH_BATCH_ENCODER",
        description="Embed a micro-batch's questions in one encoder call (false: each alone,"
        " bit-for-bit as a lone search; only the store queries are batched).",
    )
    lexical_cache_mb: int = Field(
        256,
        ge=1,
        alias="LEXICAL_CACHE_MB",
        description="Memory for BM25 posting lists kept between searches (~5 bytes a posting,"
        " ~50 a chunk: 256 MB holds a million chunks'; beyond it they are reread from disk).",
    )
    embed_document_title: bool = Field(
        False,
        alias="EMBED_DOCUMENT_TITLE",
        description="Embed each chunk with its file's title and section heading before it.",
    )

    # --- watcher --------------------------------------------------------------------------
    watch_polling: bool = Field(
        False, alias="WATCH_POLLING", description="Poll instead of inotify (bind mounts, shares)."
    )
    watch_poll_interval_s: float = Field(2.0, gt=0, alias="WATCH_POLL_INTERVAL_S")
    watch_stable_seconds: float = Field(
        2.0, ge=0, alias="WATCH_STABLE_SECONDS", description="Size+mtime unchanged this long."
    )

    # --- chroma -----------------------------------------------------------------------------
    chroma_host: str | None = Field(
        None, alias="CHROMA_HOST", description="Chroma server; unset = embedded or `nexus up`'s."
    )
    chroma_port: int = Field(8000, alias="CHROMA_PORT")

    @field_validator("backup_every")
    @classmethod
    def _duration(cls, value: str) -> str:
        if value:
            parse_duration(value)  # refuse "daily" at start-up, not in the backup thread
        return value

    @field_validator("bedrock_batch_min_chunks")
    @classmethod
    def _batch_needs_a_role(cls, value: int, info) -> int:
        if value and not info.data.get("bedrock_batch_role_arn"):
            raise ValueError("batch inference needs BEDROCK_BATCH_ROLE_ARN (the job's role)")
        return value

    @field_validator("ui_trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        """Normalised `a,b/n` list; a name or `*` is refused (only addresses are believed)."""
        import ipaddress

        networks = []
        for entry in filter(None, (item.strip() for item in value.split(","))):
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
            single = network.num_addresses == 1
            networks.append(str(network.network_address if single else network))
        return ",".join(networks)

    @field_validator("bedrock_dimensions")
    @classmethod
    def _titan_dimensions(cls, value: int) -> int:
        # a Literal[256, 512, 1024] would refuse the string "1024" that .env files hold
        if value not in (256, 512, 1024, 1536):
            raise ValueError("Bedrock embedding models offer 256, 512, 1024 or 1536 dimensions")
        return value

    def configured(self, alias: str) -> bool:
        """True when the setting named `alias` was given (environment or .env), not defaulted."""
        name = next(n for n, f in type(self).model_fields.items() if f.alias == alias)
        return name in self.model_fields_set

    # --- telemetry ----------------------------------------------------------------------------
    telemetry_enabled: bool = Field(
        True, alias="TELEMETRY_ENABLED", description="false: nothing is counted or sent."
    )
    school_id: str = Field(
        "", alias="SCHOOL_ID", description="Hashed with a per-deployment salt; empty = hostname."
    )
    telemetry_queue_max: int = Field(
        720, ge=1, alias="TELEMETRY_QUEUE_MAX", description="Hours kept while offline (30 days)."
    )
    telemetry_upload_every_s: float = Field(3600.0, gt=0, alias="TELEMETRY_UPLOAD_EVERY_S")

    # --- admin panel ----------------------------------------------------------------------------
    admin_password_hash: str = Field(
        "", alias="NEXUS_ADMIN_PASSWORD_HASH", description="scrypt hash; see nexus admin."
    )
    admin_session_timeout_min: int = Field(30, ge=1, alias="ADMIN_SESSION_TIMEOUT_MIN")
    admin_login_free_attempts: int = Field(
        5, ge=1, alias="ADMIN_LOGIN_FREE_ATTEMPTS", description="Failed logins before delays."
    )
    admin_login_max_delay_s: float = Field(
        900.0, gt=0, alias="ADMIN_LOGIN_MAX_DELAY_S", description="Longest lockout (doubling)."
    )
    admin_login_max_failures_per_min: int = Field(
        10,
        ge=1,
        alias="ADMIN_LOGIN_MAX_FAILURES_PER_MIN",
        description="Failed logins per minute for the whole installation, whatever the address.",
    )
    ui_trusted_proxies: str = Field(
        "",
        alias="UI_TRUSTED_PROXIES",
        description="Reverse proxies whose X-Forwarded-For the panel believes (IPs or CIDRs, "
        "comma-separated); empty: no forwarded header is believed.",
    )
    upload_max_mb: int = Field(
        200, ge=1, alias="UPLOAD_MAX_MB", description="Largest PDF the panel accepts (MB)."
    )
    ui_address: str = Field(
        "127.0.0.1", alias="UI_ADDRESS", description="Where the panel listens (0.0.0.0 = LAN)."
    )
    ui_port: int = Field(8501, alias="UI_PORT")
    ui_language: Literal["id", "en"] = Field(
        "id", alias="UI_LANGUAGE", description="Panel language: id (Indonesian) or en."
    )
    api_address: str = Field(
        "127.0.0.1", alias="API_ADDRESS", description="Where the HTTP API listens."
    )
    api_port: int = Field(8600, alias="API_PORT", description="The HTTP API's port.")
    api_rate_per_min: int = Field(
        120,
        ge=1,
        alias="API_RATE_PER_MIN",
        description="HTTP API: requests per minute per key (token bucket; 429 beyond).",
    )
    api_workers: int = Field(
        1,
        ge=1,
        le=64,
        alias="API_WORKERS",
        description="`nexus serve`: API worker processes (about one per core; more than 1 runs"
        " a Chroma server, started by `nexus serve` when none runs).",
    )

    # --- knowledge packages (VKP) -------------------------------------------------------------
    vkp_signing_key: Path | None = Field(
        None,
        alias="VKP_SIGNING_KEY",
        description="Ed25519 key; default <data>/keys/vkp_signing.key",
    )
    vkp_trusted_keys: str = Field(
        "", alias="VKP_TRUSTED_KEYS", description="Comma-separated .pub files; default keys/*.pub"
    )
    vkp_keep_versions: int = Field(5, ge=1, alias="VKP_KEEP_VERSIONS")
    vkp_source: str = Field(
        "",
        alias="VKP_SOURCE",
        description="Where `nexus vkp pull` reads: URL, folder or cloudfront",
    )
    vkp_catalogue_expires_days: int = Field(
        0,
        ge=0,
        le=3650,
        alias="VKP_CATALOGUE_EXPIRES_DAYS",
        description="Admin side: catalogues expire this many days after publishing (schools"
        " then refuse them); 0 = never, so schools updating offline from a USB stick keep working",
    )

    # --- backups ---------------------------------------------------------------------------------
    backup_dir_override: Path | None = Field(
        None, alias="BACKUP_DIR", description="Default backup target; empty = <data>/backups."
    )
    backup_keep: int = Field(7, ge=1, alias="BACKUP_KEEP", description="Backups kept (newest).")
    backup_every: str = Field(
        "", alias="BACKUP_EVERY", description="e.g. 24h: the running engine backs up; empty = off"
    )


def load_settings(**overrides: object) -> Settings:
    """Build settings from env/.env, with keyword overrides (used by tests and the CLI)."""
    return Settings(**overrides)
