#!/bin/sh
# /usr/local/bin/vigilus in the image: the `vigilus` command, always as the unprivileged vigilus user.
#
# Started as root (the container's entrypoint, `docker exec vigilus vigilus jit list`), it first makes the data
# directory usable — creates it, gives the directory itself and Vigilus's own files in it to vigilus, never a
# recursive chown of what a user mounted — and joins the group that owns a mounted docker.sock (its gid differs
# from host to host), then drops root for good. Nothing Vigilus runs, and no file it writes, belongs to root.
set -eu

VENV_VIGILUS=/opt/vigilus/venv/bin/vigilus
DATA_DIR="${VIGILUS_DATA_DIR:-/data}"
DOCKER_SOCKET="${VIGILUS_DOCKER_SOCKET:-/var/run/docker.sock}"

if [ "$(id -u)" != 0 ]; then
  exec "$VENV_VIGILUS" "$@"
fi

mkdir -p "$DATA_DIR"
chown vigilus:vigilus "$DATA_DIR"
chmod 0700 "$DATA_DIR"
# Vigilus's own files: the keys, SQLite, the embedded Redis's files, mcp.json, the audit witness, the schema
# record and the backups folder (a root-owned one is left by an image that ran them as root).
for own in "$DATA_DIR"/*.key "$DATA_DIR"/vigilus.sqlite3 "$DATA_DIR"/vigilus.sqlite3-* "$DATA_DIR"/redis.* \
  "$DATA_DIR"/appendonlydir "$DATA_DIR"/mcp.json "$DATA_DIR"/audit-witness.jsonl "$DATA_DIR"/schema.json \
  "$DATA_DIR"/backups; do
  if [ -e "$own" ] && [ "$(stat -c %u "$own")" = 0 ]; then
    chown -h vigilus:vigilus "$own"
  fi
done

groups=$(id -g vigilus)
if [ -S "$DOCKER_SOCKET" ]; then
  socket_gid=$(stat -c %g "$DOCKER_SOCKET")
  if [ "$socket_gid" != 0 ]; then
    groups="$groups,$socket_gid"
  elif [ "${1:-}" = run ]; then
    echo "vigilus: $DOCKER_SOCKET belongs to the root group; the Docker tools cannot use it as the vigilus user." \
      "Give the socket a group of its own on the host (the docker group)." >&2
  fi
fi

export HOME=/home/vigilus USER=vigilus LOGNAME=vigilus
# What Vigilus writes in /data (keys, database, queue) is for its own user alone.
umask 077
exec setpriv --reuid=vigilus --regid=vigilus --groups="$groups" --inh-caps=-all -- "$VENV_VIGILUS" "$@"
