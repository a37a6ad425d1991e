"""GreenKPI settings: one module, driven by environment variables (documented in .env.example).

With nothing set, everything runs locally: SQLite under var/, a file-system Celery broker and a file
cache, so `make demo` needs no server. Production sets DATABASE_URL (PostgreSQL) and REDIS_URL.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import environ

from greenkpi.lib.envconfig import (
    ConfigError,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
    load_or_create_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("GREENKPI_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# --- Operator metrics (/metrics, docs/operations.md) ---
# prometheus_client's multiprocess mode: every gunicorn worker and Celery process writes its
# counters here and a scrape sums them. Set before anything imports prometheus_client, which reads
# it once; processes that should be summed together must share the directory (one host/volume).
PROMETHEUS_MULTIPROC_DIR = Path(env_str("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "prometheus")))
PROMETHEUS_MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(PROMETHEUS_MULTIPROC_DIR)
# Scrapes send `Authorization: Bearer <METRICS_TOKEN>`, or come from an address in METRICS_ALLOW
# (client IPs, exact). Neither set: /metrics answers 403 to everyone.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_ALLOW = env_list("METRICS_ALLOW", "")
# A collector that has sent nothing for this long counts as silent.
METRICS_SILENT_AFTER_S = env_int("METRICS_SILENT_AFTER_S", 900, minimum=60)

DEBUG = env_bool("DEBUG", False)
# Set by `make demo` only: the login page then lists the demo's users (never in production).
GREENKPI_DEMO = env_bool("GREENKPI_DEMO", False)
SECRET_KEY = env_str("SECRET_KEY", "") or load_or_create_secret(VAR_DIR / "secret_key")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "greenkpi.inventory",
    "greenkpi.ingest",
    "greenkpi.carbon",
    "greenkpi.kpis",
    "greenkpi.alerts",
    "greenkpi.workloads",
    "greenkpi.recommendations",
    "greenkpi.integrations",
    "greenkpi.dashboard",
    "greenkpi.ops",
    "greenkpi.demo",
]

MIDDLEWARE = [
    # First: request latency by route for /metrics, including what the layers below answer.
    "greenkpi.lib.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After WhiteNoise (which serves static files pre-compressed): pages, JSON figures and CSV.
    "django.middleware.gzip.GZipMiddleware",
    "greenkpi.dashboard.common.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "greenkpi.urls"
WSGI_APPLICATION = "greenkpi.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # The one unit rule and the carbon names, in every template without {% load %}.
            "builtins": ["greenkpi.kpis.templatetags.kpi_units"],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
_database_url = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'greenkpi.sqlite3'}")
if not _database_url.startswith(("postgres://", "postgresql://", "pgsql://", "sqlite://")):
    raise ConfigError(f"DATABASE_URL must be postgres://... or sqlite://..., got {_database_url!r}")
DATABASES = {"default": environ.Env.db_url_config(_database_url)}
# Persistent connections doubled ingest throughput in our measurements (reference/performance-limits).
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 600, minimum=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let the web app, worker and beat share one file without "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
USING_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")
# Optional read replica for the dashboards' read layer (greenkpi/lib/replica.py, docs/scaling.md):
# unset, no second alias, router or middleware exists and everything reads the primary.
_replica_url = env_str("DATABASE_REPLICA_URL", "")
DATABASE_REPLICA_PIN_S = env_int("DATABASE_REPLICA_PIN_S", 10, minimum=0)
if _replica_url:
    if not USING_POSTGRES or not _replica_url.startswith(("postgres://", "postgresql://")):
        raise ConfigError("DATABASE_REPLICA_URL needs PostgreSQL, and DATABASE_URL PostgreSQL too")
    DATABASES["replica"] = environ.Env.db_url_config(_replica_url)
    DATABASES["replica"].update(
        CONN_MAX_AGE=DATABASES["default"]["CONN_MAX_AGE"],
        CONN_HEALTH_CHECKS=True,
        TEST={"MIRROR": "default"},  # tests read the replica alias from the test database
    )
    DATABASE_ROUTERS = ["greenkpi.lib.replica.PrimaryReplicaRouter"]
    # last: a request's read layer may read the replica unless it writes or was pinned
    MIDDLEWARE.append("greenkpi.lib.replica.ReplicaReadsMiddleware")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker and cache ------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ConfigError(f"REDIS_URL must be redis://..., got {REDIS_URL!r}")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "greenkpi"),
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        # Above our longest task's hard limit, or Redis redelivers running tasks (reference A4).
        "visibility_timeout": 2 * 3600,
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }
    # A broker that needs no server: real worker and beat processes exchange messages as files.
    _broker_dir = VAR_DIR / "celery-broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }

# The read layer's daily parts, per process (kpis/read/cache.py says why in memory and why it is
# exact): a result of more rows than READ_CACHE_MAX_ROWS is not kept; 0 turns the cache off.
READ_CACHE_MAX_ROWS = env_int("READ_CACHE_MAX_ROWS", 20_000, minimum=0)
CACHES["read"] = {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "greenkpi-read",
    "TIMEOUT": env_int("READ_CACHE_S", 3600, minimum=1),
    "OPTIONS": {"MAX_ENTRIES": env_int("READ_CACHE_ENTRIES", 64, minimum=1)},
}

CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = 3600
CELERY_TASK_SOFT_TIME_LIMIT = 3300
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# One beat sends, however many run (greenkpi/beat.py, docs/operations.md): a Redis lease with this
# TTL; a second beat is a standby that warns and sends nothing. 0 turns the guard off.
CELERY_BEAT_SCHEDULER = "greenkpi.beat:SingleBeatScheduler"
BEAT_LEASE_S = env_float("BEAT_LEASE_S", 60.0, minimum=0.0)
BEAT_LEASE_KEY = env_str("BEAT_LEASE_KEY", "greenkpi:celery-beat")
CELERY_TIMEZONE = "UTC"

# --- Live grid intensity (docs/carbon-data.md): optional, nothing is fetched without a key ---
ELECTRICITYMAPS_API_KEY = env_str("ELECTRICITYMAPS_API_KEY", "")
ELECTRICITYMAPS_URL = env_str("ELECTRICITYMAPS_URL", "https://api.electricitymap.org/v3")

# --- Ingestion limits (docs/api.md) ----------------------------------------------------------
INGEST_MAX_BODY_BYTES = env_int("INGEST_MAX_BODY_BYTES", 8 * 1024 * 1024, minimum=1024)
INGEST_MAX_SAMPLES = env_int("INGEST_MAX_SAMPLES", 10_000, minimum=1)
INGEST_MAX_WINDOW_S = env_float("INGEST_MAX_WINDOW_S", 3600.0, minimum=1.0)
INGEST_MAX_FUTURE_S = env_float("INGEST_MAX_FUTURE_S", 600.0, minimum=0.0)
INGEST_MAX_AGE_DAYS = env_float("INGEST_MAX_AGE_DAYS", 31.0, minimum=1.0)
INGEST_RATE_PER_MINUTE = env_int("INGEST_RATE_PER_MINUTE", 600, minimum=1)
INGEST_IDEMPOTENCY_DAYS = env_int("INGEST_IDEMPOTENCY_DAYS", 7, minimum=1)
# --- Raw storage (docs/scaling.md): day partitions on PostgreSQL, retention of raw windows -----
# Raw windows older than this are dropped once every hour they touch is rolled up at the current
# methodology version (rollups are kept). It must exceed the late-data limit by a day at least
# (partitions are whole UTC days), or a late sample could land in an hour already dropped.
RAW_RETENTION_DAYS = env_int("RAW_RETENTION_DAYS", 400, minimum=math.floor(INGEST_MAX_AGE_DAYS) + 2)
# Day partitions are created this many days ahead (an outage of the periodic job this long
# still ingests into partitions made before it; after it, into the default partition).
RAW_PARTITIONS_AHEAD_DAYS = env_int("RAW_PARTITIONS_AHEAD_DAYS", 7, minimum=2, maximum=60)
CLOCK_SKEW_WARN_S = env_float("CLOCK_SKEW_WARN_S", 60.0, minimum=0.0)

# --- Auth, API ---------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "greenkpi.api_errors.problem_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "GreenKPI API",
    "DESCRIPTION": "Energy and carbon of machine-learning work: ingestion, registry and KPIs.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc from the installed package, not a CDN: self-hosters may be offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Request and response components apart, so request strings that may not be blank say so
    # (minLength 1, and a pattern: greenkpi/api_schema.py).
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "greenkpi.api_schema.request_text",
        "greenkpi.api_schema.list_bounds",
        "greenkpi.api_schema.ingest_example",
        "greenkpi.api_schema.bodies_required",
    ],
}

# --- Mail ---------------------------------------------------------------------------------
EMAIL_BACKEND = env_choice(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend",
    (
        "django.core.mail.backends.console.EmailBackend",
        "django.core.mail.backends.smtp.EmailBackend",
        "django.core.mail.backends.locmem.EmailBackend",
        "django.core.mail.backends.filebased.EmailBackend",
    ),
)
EMAIL_FILE_PATH = VAR_DIR / "mail"  # filebased backend: one .log file per message (make demo)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "greenkpi@localhost")

# --- Static, i18n, security ------------------------------------------------------------------
LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Hashed names from collectstatic's manifest in production. A server without
        # collectstatic run (DEBUG, or a test's gunicorn: STATIC_MANIFEST=false) would answer
        # 500 on every HTML page, the 404 page included, so it serves the names unhashed.
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env_bool("STATIC_MANIFEST", not DEBUG)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
