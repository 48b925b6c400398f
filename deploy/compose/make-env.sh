#!/usr/bin/env bash
# Writes the compose stack's secrets file (default deploy/compose/.env) with a fresh
# random value for every variable .env.example leaves empty. Refuses to overwrite.
#
#   deploy/compose/make-env.sh [FILE]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
target=${1:-$here/.env}

if [ -e "$target" ]; then
  echo "error: $target exists; delete it first to make new secrets (the alerts key in it seals stored channel secrets)" >&2
  exit 1
fi

# urlsafe base64 of N random bytes: letters, digits, - and _ (and = padding)
random_b64() { head -c "$1" /dev/urandom | base64 --wrap=0 | tr '+/' '-_'; }

value_for() {
  case $1 in
    # Fernet: exactly 32 bytes, padding kept
    VITALS_ALERTS_SECRETS_KEY | VITALS_CONSOLE_SESSION_KEY) random_b64 32 ;;
    # 32 characters, no padding: safe unescaped in a database URL
    *) random_b64 24 | tr -d '=' ;;
  esac
}

umask 077
tmp=$(mktemp "$target.XXXXXX")
trap 'rm -f "$tmp"' EXIT
while IFS= read -r line; do
  if [[ $line =~ ^([A-Z][A-Z0-9_]*)=$ ]]; then
    printf '%s=%s\n' "${BASH_REMATCH[1]}" "$(value_for "${BASH_REMATCH[1]}")"
  else
    printf '%s\n' "$line"
  fi
done <"$here/.env.example" >"$tmp"
mv "$tmp" "$target"
trap - EXIT
echo "Wrote $target (mode 0600)"
