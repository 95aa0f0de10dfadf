"""Vigilus settings, read from the environment (README.md lists every variable and its default).

Every variable is prefixed VIGILUS_, except the conventions DATABASE_URL and REDIS_URL. Secrets
may be given as NAME_FILE (a path) instead of NAME, for Docker secrets.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import environ
from kombu import Queue

from vigilus.keyfiles import env_or_file, load_keys
from vigilus.oidc.config import check_settings as check_sso_settings
from vigilus.oidc.config import parse_role_map

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

DATA_DIR = Path(env.str("VIGILUS_DATA_DIR", default="~/.vigilus")).expanduser().resolve()

# --- Database -------------------------------------------------------------------------------
# SQLite in the data directory unless DATABASE_URL says otherwise (postgres://..., sqlite:////path).
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'vigilus.sqlite3'}")}
USING_SQLITE = "sqlite3" in DATABASES["default"]["ENGINE"]
if USING_SQLITE:
    SQLITE_PATH = Path(DATABASES["default"]["NAME"])
    # WAL lets the web, worker, beat and command-line processes read while one writes; IMMEDIATE
    # takes the write lock at BEGIN, so concurrent writers wait on the busy timeout instead of
    # failing with "database is locked" halfway through a transaction.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    }
    # On disk, not in memory, so that the workers and commands a test starts can share it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    # Every commit reaches the disk before it returns (the audit entry before a call that can change something
    # must outlive a power cut), also on a server whose default says otherwise, unless the URL sets it itself.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    if "synchronous_commit" not in _options.get("options", ""):
        _options["options"] = f"{_options.get('options', '')} -c synchronous_commit=on".strip()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Keys (created in the data directory on first start; see vigilus/keyfiles.py) -------------
# With PostgreSQL the database cannot be looked at before Django starts; there the key check
# (vigilus.services.verify_keys, at every process start) refuses keys that do not fit the database.
KEYS = load_keys(DATA_DIR, database_exists=USING_SQLITE and SQLITE_PATH.exists() and SQLITE_PATH.stat().st_size > 0)
SECRET_KEY = KEYS.secret_key
ENCRYPTION_KEYS = KEYS.encryption_keys
JIT_SIGNING_KEY_PEM = KEYS.jit_signing_key_pem

# --- Core -----------------------------------------------------------------------------------
DEBUG = env.bool("VIGILUS_DEBUG", default=False)
ALLOWED_HOSTS = env.list("VIGILUS_ALLOWED_HOSTS", default=["*"])
# The machine itself always reaches its own dashboard: Docker's health check, install.sh and `vigilus run` ask
# http://127.0.0.1:PORT/healthz whatever names people use.
LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
ALLOWED_HOSTS += [host for host in LOOPBACK_HOSTS if "*" not in ALLOWED_HOSTS and host not in ALLOWED_HOSTS]
CSRF_TRUSTED_ORIGINS = env.list("VIGILUS_CSRF_TRUSTED_ORIGINS", default=[])
PORT = env.int("VIGILUS_PORT", default=3000)
# How people reach the dashboard (links in notifications).
PUBLIC_URL = env.str("VIGILUS_PUBLIC_URL", default=f"http://localhost:{PORT}")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_celery_beat",
    "channels",
    "vigilus.apps.VigilusConfig",
    "providers.apps.ProvidersConfig",
    "tools.apps.ToolsConfig",
    "jit.apps.JITConfig",
    "audit.apps.AuditConfig",
    "operators.apps.OperatorsConfig",
    "ninja",  # the API docs page's Swagger UI from its own static files, not a CDN
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "vigilus.urls"
ASGI_APPLICATION = "vigilus.asgi.application"
WSGI_APPLICATION = None

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
                "vigilus.navigation.navigation",
                "jit.context_processors.pending_approvals",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Messages live in the session, not in a cookie: one of them may carry a generated password.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# Failed logins allowed per username and per client address within the window, then refused.
LOGIN_FAILURE_LIMIT = env.int("VIGILUS_LOGIN_FAILURE_LIMIT", default=5)
LOGIN_FAILURE_WINDOW = env.int("VIGILUS_LOGIN_FAILURE_WINDOW", default=300)
# Requests a minute per API token (per person for a dashboard session) under /api/v1/; more get 429.
API_RATE_LIMIT = env.int("VIGILUS_API_RATE_LIMIT", default=120)

# --- Single sign-on: one OpenID Connect provider (README.md "Single sign-on"; vigilus/oidc/) ----------------------
# mozilla-django-oidc, not django-allauth: one provider named by the environment needs a backend and two views, not
# allauth's account models and provider catalogue. The provider's endpoints come from its discovery document, fetched
# on first use. A configuration that would let nobody in stops the start (vigilus/oidc/config.py).
OIDC_ISSUER = env.str("VIGILUS_OIDC_ISSUER", default="")
OIDC_CLIENT_ID = env.str("VIGILUS_OIDC_CLIENT_ID", default="")
OIDC_CLIENT_SECRET = env_or_file("VIGILUS_OIDC_CLIENT_SECRET") or ""
OIDC_SCOPES = env.str("VIGILUS_OIDC_SCOPES", default="openid email profile groups")
OIDC_ROLE_CLAIM = env.str("VIGILUS_OIDC_ROLE_CLAIM", default="groups")
OIDC_USERNAME_CLAIM = env.str("VIGILUS_OIDC_USERNAME_CLAIM", default="preferred_username")
OIDC_ROLES = parse_role_map(env.str("VIGILUS_OIDC_ROLES", default=""))  # {group: role}
OIDC_NAME = env.str("VIGILUS_OIDC_NAME", default="single sign-on")  # the button says "Sign in with ..."
# A first sign-in whose username names a local account not linked yet links it (once); off: refused with the
# command that links it (`vigilus users link-sso`).
OIDC_LINK_EXISTING = env.bool("VIGILUS_OIDC_LINK_EXISTING", default=False)
# false: no password logins (the dashboard's and the admin's); `vigilus users` still manages people and passwords.
LOCAL_LOGIN = env.bool("VIGILUS_LOCAL_LOGIN", default=True)
check_sso_settings(issuer=OIDC_ISSUER, client_id=OIDC_CLIENT_ID, roles=OIDC_ROLES, local_login=LOCAL_LOGIN)
AUTHENTICATION_BACKENDS = [
    *(["django.contrib.auth.backends.ModelBackend"] if LOCAL_LOGIN else []),
    *(["vigilus.oidc.backend.OidcBackend"] if OIDC_ISSUER else []),
]
# mozilla-django-oidc's own settings (the rest it reads from vigilus.oidc.config).
OIDC_USE_PKCE = True
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc-callback"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("VIGILUS_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "vigilus" / "static"]
# Static files are served by WhiteNoise straight from the source tree (no collectstatic step).
WHITENOISE_USE_FINDERS = True
# Files browsers ask for at the site's root (/favicon.ico), served like static files, before any login.
WHITENOISE_ROOT = BASE_DIR / "vigilus" / "public"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Redis, cache, channels, Celery ---------------------------------------------------------
# Without REDIS_URL, `make run` starts an embedded Redis listening on a unix socket in the data dir.
EMBEDDED_REDIS_SOCKET = DATA_DIR / "redis.sock"
REDIS_URL = env.str("REDIS_URL", default="") or f"unix://{EMBEDDED_REDIS_SOCKET}"
REDIS_EMBEDDED = not env.str("REDIS_URL", default="")
# Prefix of the cache's and the channel layer's keys (lets several instances share one Redis).
REDIS_KEY_PREFIX = env.str("VIGILUS_REDIS_PREFIX", default="vigilus")


def celery_broker_url(redis_url: str) -> str:
    """Celery (kombu) spells a Redis unix socket `redis+socket://PATH`."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        query = f"?{parts.query}" if parts.query else ""
        return f"redis+socket://{parts.path}{query}"
    return redis_url


CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": REDIS_KEY_PREFIX,
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # A consumer waits for its next message with a blocking read of 5 s (channels-redis's brpop_timeout); redis-py
        # 8 gives up on a socket after 5 s by default, so the two raced and dropped websockets with a TimeoutError.
        # The socket timeout stays finite (a dead connection is still noticed) but outlasts the blocking read.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "prefix": f"{REDIS_KEY_PREFIX}:channels"},
    }
}

CELERY_BROKER_URL = celery_broker_url(REDIS_URL)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "expire-access-requests": {"task": "jit.tasks.expire_requests", "schedule": 60.0},
    "expire-plans": {"task": "operators.tasks.expire_plans", "schedule": 60.0},
    "audit-checkpoint": {"task": "audit.tasks.take_checkpoint", "schedule": 3600.0},
    # The reconciler: every run that needs a worker gets one, whatever happened to its message.
    "resume-stalled-runs": {"task": "operators.tasks.resume_stalled_runs", "schedule": 30.0},
}
# Every queue the project uses. A worker started without -Q consumes all of them, so the
# Procfile's worker line never needs to repeat this list.
CELERY_TASK_DEFAULT_QUEUE = "default"
# (A `tools` queue was declared once, and nothing was ever sent to it: tool calls run inside their run's step. A
# queue of their own comes back with the change that routes them to it.)
CELERY_TASK_QUEUES = (Queue("default", routing_key="default"),)

# --- Audit log (README.md "Audit log"; checked by audit/checks.py) --------------------------
# Every signed checkpoint is also appended here, outside the database, and `audit verify` checks the log against it.
AUDIT_WITNESS_FILE = Path(env.str("VIGILUS_AUDIT_WITNESS_FILE", default=str(DATA_DIR / "audit-witness.jsonl")))
AUDIT_WITNESS_FILE = AUDIT_WITNESS_FILE.expanduser().absolute()
# Outside witnesses sent every checkpoint, best effort: Apprise URLs (json://, ntfy://, syslog://, mailto://, ...) and
# http(s):// endpoints that are POSTed its JSON. Separated by spaces, newlines or commas; they may hold tokens, so
# VIGILUS_AUDIT_WITNESS_URLS_FILE may name a file instead (Docker secrets).
AUDIT_WITNESS_URLS = env_or_file("VIGILUS_AUDIT_WITNESS_URLS") or ""
# A checkpoint is taken after every this many entries (0: only the hourly one), besides the hourly one.
AUDIT_CHECKPOINT_EVERY = env.int("VIGILUS_AUDIT_CHECKPOINT_EVERY", default=1000)

# --- Prometheus metrics (vigilus/metrics.py) -------------------------------------------------
# The bearer token Prometheus sends to GET /metrics (or VIGILUS_METRICS_TOKEN_FILE naming a file that holds it, as
# Docker secrets do). Unset: /metrics answers 404.
METRICS_TOKEN = env_or_file("VIGILUS_METRICS_TOKEN") or ""

# --- Tools ---------------------------------------------------------------------------------
# Where the built-in filesystem server may read and write (the data directory is refused anyway).
FILESYSTEM_ROOTS = [Path(p).expanduser() for p in env.list("VIGILUS_FILESYSTEM_ROOTS", default=[str(Path.home())])]
# SSH fan-out: hosts worked on at once, and seconds to connect, exchange keys and log in to one host.
SSH_MAX_PARALLEL = env.int("VIGILUS_SSH_MAX_PARALLEL", default=20)
SSH_CONNECT_TIMEOUT = env.float("VIGILUS_SSH_CONNECT_TIMEOUT", default=10.0)

# --- HTTPS behind a reverse proxy -----------------------------------------------------------
HTTPS = env.bool("VIGILUS_HTTPS", default=False)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# The health check is asked over plain HTTP on the loopback, behind the proxy that speaks HTTPS.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("VIGILUS_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("VIGILUS_HSTS_INCLUDE_SUBDOMAINS", default=False)
    SECURE_HSTS_PRELOAD = False
    SILENCED_SYSTEM_CHECKS = [
        # HSTS is sent, but only for this host: subdomains of a homelab domain are often other
        # plain-HTTP devices; VIGILUS_HSTS_INCLUDE_SUBDOMAINS=true opts in.
        *([] if SECURE_HSTS_INCLUDE_SUBDOMAINS else ["security.W005"]),
        # Preloading is a browser-vendor list for public sites, not for a self-hosted dashboard.
        "security.W021",
    ]
else:
    SILENCED_SYSTEM_CHECKS = [
        # The default is plain HTTP on a LAN (http://host:3000). Secure cookies, HTTPS redirects
        # and HSTS would lock the user out there; VIGILUS_HTTPS=true turns all four on.
        "security.W004",  # SECURE_HSTS_SECONDS
        "security.W008",  # SECURE_SSL_REDIRECT
        "security.W012",  # SESSION_COOKIE_SECURE
        "security.W016",  # CSRF_COOKIE_SECURE
    ]

# --- Logging: every record is redacted where it is made, and by each handler (vigilus/logs.py) --------
LOG_LEVEL = env.str("VIGILUS_LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "vigilus.logs.RedactingFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # paramiko logs every failed handshake with a traceback; the inventory and the ssh server report
        # each failure themselves, in a sentence naming the host.
        "paramiko": {"level": "CRITICAL"},
    },
}
