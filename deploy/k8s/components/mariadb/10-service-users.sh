#!/bin/bash
# Runs once, when the MariaDB volume is initialised: one user per service,
# with every privilege on its own database (`hanwha_<service>`, which the
# service creates and migrates on its first start) and none elsewhere.
set -euo pipefail
refuse_placeholder() {
  if [ "$2" = REPLACE_ME ]; then
    echo "$1 is still the placeholder REPLACE_ME: put real passwords in the hanwha-database Secret (docs/OPERATIONS.md, \"Secrets\")" >&2
    exit 1
  fi
}
refuse_placeholder MARIADB_ROOT_PASSWORD "$MARIADB_ROOT_PASSWORD"
for service in identity order payment store delivery status notification; do
  var="$(echo "$service" | tr '[:lower:]' '[:upper:]')_PASSWORD"
  password="${!var:-}"
  [ -n "$password" ] || continue
  refuse_placeholder "$var" "$password"
  # Passwords are letters and digits (docs/OPERATIONS.md): nothing to quote.
  mariadb --protocol=socket -uroot -p"$MARIADB_ROOT_PASSWORD" <<SQL
CREATE USER '$service'@'%' IDENTIFIED BY '$password';
GRANT ALL PRIVILEGES ON \`hanwha_$service\`.* TO '$service'@'%';
SQL
done
