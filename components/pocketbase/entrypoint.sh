#!/bin/sh
# Create or update the superuser from the environment, then serve. The settings are encrypted in
# the database with PB_ENCRYPTION_KEY; the migrations apply the backup settings (C7).
set -eu
: "${PB_SUPERUSER_EMAIL:?PB_SUPERUSER_EMAIL is required}"
: "${PB_SUPERUSER_PASSWORD:?PB_SUPERUSER_PASSWORD is required}"
: "${PB_ENCRYPTION_KEY:?PB_ENCRYPTION_KEY is required}"
home="${PB_HOME:-/pb}"
flags="--dir=$home/pb_data --encryptionEnv=PB_ENCRYPTION_KEY"
# shellcheck disable=SC2086 # $flags is two words on purpose
"$home/pocketbase" superuser upsert "$PB_SUPERUSER_EMAIL" "$PB_SUPERUSER_PASSWORD" $flags
# ":8090" listens on IPv4 and IPv6: Railway's private network is IPv6-only in environments created
# before 16 October 2025, and the engine reaches PocketBase there by its railway.internal name.
# shellcheck disable=SC2086
exec "$home/pocketbase" serve --http="${PB_HTTP:-:8090}" --migrationsDir="$home/pb_migrations" \
    --automigrate=false $flags
