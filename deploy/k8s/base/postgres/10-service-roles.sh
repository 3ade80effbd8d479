#!/bin/bash
# Runs once, when the PostgreSQL volume is initialised: one login role per
# service, allowed to create its own database (`hanwha_<service>`, which the
# service creates and migrates on its first start) and nothing else, so no
# service can read another's tables.
set -euo pipefail
refuse_placeholder() {
  if [ "$2" = REPLACE_ME ]; then
    echo "$1 is still the placeholder REPLACE_ME: put real passwords in the hanwha-database Secret (docs/OPERATIONS.md, \"Secrets\")" >&2
    exit 1
  fi
}
refuse_placeholder POSTGRES_PASSWORD "$POSTGRES_PASSWORD"
for service in identity order payment store delivery status notification; do
  var="$(echo "$service" | tr '[:lower:]' '[:upper:]')_PASSWORD"
  password="${!var:-}"
  [ -n "$password" ] || continue
  refuse_placeholder "$var" "$password"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v role="$service" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN CREATEDB PASSWORD :'password';
SQL
done
