#!/usr/bin/env bash
# Writes .env for `docker compose` from .env.example, every change-me value replaced by a fresh
# random secret (hex: safe inside MYSQL_DSN). Refuses to overwrite an existing .env.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-.env}
if [ -e "$target" ]; then
  echo "$target exists; remove it first to make a new one" >&2
  exit 1
fi
umask 077
while IFS= read -r line; do
  if [[ $line =~ ^([A-Z][A-Z0-9_]*)=change-me ]]; then
    printf '%s=%s\n' "${BASH_REMATCH[1]}" "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
  else
    printf '%s\n' "$line"
  fi
done < .env.example > "$target"
sed -i 's/^ENVIRONMENT=development$/ENVIRONMENT=production/' "$target"
echo "wrote $target (mode 600)"
