#!/bin/sh
# Started as root: make the data directory the unprivileged user's, then run as that user.
#   entrypoint.sh               PocketBase: its superuser created or updated from the environment,
#                               its settings, the engine's schema and the engine's account (PB_ENGINE_*)
#                               applied by pb_hooks at every start, and, when a replica
#                               bucket is set (LITESTREAM_BUCKET), Litestream replicating it around it
#                               (a volume without a database first restores the latest replica)
#   entrypoint.sh restore-test  the scheduled restore test (drtool.py)
set -eu
home="${PB_HOME:-/pb}"
if [ "$(id -u)" = 0 ]; then
    # Railway mounts a volume root-owned ("Docker images that run as a non-root UID by default will
    # have permissions issues", docs.railway.com/volumes/reference, Caveats), and Docker makes a new
    # named volume root-owned where the image has no such directory. Only root can hand it over;
    # PocketBase itself never runs as root.
    mkdir -p "$home/pb_data"
    chown -R 10001:10001 "$home/pb_data"
    exec setpriv --reuid=10001 --regid=10001 --clear-groups --no-new-privs -- /bin/sh "$0" "$@"
fi
: "${PB_ENCRYPTION_KEY:?PB_ENCRYPTION_KEY is required}"
if [ "${1:-}" = "restore-test" ]; then
    exec python3 "$home/drtool.py" restore-test
fi
: "${PB_SUPERUSER_EMAIL:?PB_SUPERUSER_EMAIL is required}"
: "${PB_SUPERUSER_PASSWORD:?PB_SUPERUSER_PASSWORD is required}"
: "${PB_ENGINE_EMAIL:?PB_ENGINE_EMAIL is required (the engine's account, pb_hooks/engine_schema.pb.js)}"
: "${PB_ENGINE_PASSWORD:?PB_ENGINE_PASSWORD is required (the engine's account, pb_hooks/engine_schema.pb.js)}"
# PocketBase's minimum and bcrypt's maximum: their own errors name neither the variable nor the account.
length=$(printf %s "$PB_ENGINE_PASSWORD" | wc -c | tr -d " ")
if [ "$length" -lt 8 ] || [ "$length" -gt 72 ]; then
    echo "entrypoint: PB_ENGINE_PASSWORD is $length bytes; expected 8 to 72 (the engine's account)" >&2
    exit 2
fi
flags="--dir=$home/pb_data --encryptionEnv=PB_ENCRYPTION_KEY"
if [ -n "${LITESTREAM_BUCKET:-}" ]; then
    # Before the superuser upsert, which would create an empty database.
    python3 "$home/drtool.py" restore-if-empty --dir "$home/pb_data"
fi
# shellcheck disable=SC2086 # $flags is two words on purpose
"$home/pocketbase" superuser upsert "$PB_SUPERUSER_EMAIL" "$PB_SUPERUSER_PASSWORD" $flags
# ":8090" listens on IPv4 and IPv6: Railway's private network is IPv6-only in environments created
# before 16 October 2025, and the engine reaches PocketBase there by its railway.internal name.
http="${PB_HTTP:-:8090}"
tls=""
if [ -n "${PB_TLS_CERT_B64:-}" ] || [ -n "${PB_TLS_KEY_B64:-}" ]; then
    # TLS on the network (S1, #22 item 7): the certificate the stack generated, which the engine pins
    # (POCKETBASE_CA_CERT); PocketBase itself then listens on loopback only, behind tlsproxy.py.
    : "${PB_TLS_CERT_B64:?PB_TLS_CERT_B64 is required with PB_TLS_KEY_B64 (TLS in front of PocketBase)}"
    : "${PB_TLS_KEY_B64:?PB_TLS_KEY_B64 is required with PB_TLS_CERT_B64 (TLS in front of PocketBase)}"
    tls="$(mktemp -d)"
    (umask 077 && printf %s "$PB_TLS_CERT_B64" | base64 -d > "$tls/cert.pem" \
        && printf %s "$PB_TLS_KEY_B64" | base64 -d > "$tls/key.pem")
    unset PB_TLS_KEY_B64
    http="${PB_HTTP_LOOPBACK:-127.0.0.1:8090}"
fi
set -- "$home/pocketbase" serve --http="$http" --hooksDir="$home/pb_hooks" \
    --migrationsDir="$home/pb_migrations" --automigrate=false --dir="$home/pb_data" --encryptionEnv=PB_ENCRYPTION_KEY
if [ -n "${LITESTREAM_BUCKET:-}" ]; then
    set -- python3 "$home/drtool.py" replicate --dir "$home/pb_data" -- "$@"
fi
if [ -n "$tls" ]; then
    set -- python3 "$home/tlsproxy.py" --listen "${PB_TLS_LISTEN:-:8443}" --upstream "$http" \
        --cert "$tls/cert.pem" --key "$tls/key.pem" -- "$@"
fi
exec "$@"
