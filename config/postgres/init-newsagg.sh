#!/usr/bin/env bash
# First start of the stack's PostgreSQL (mounted into /docker-entrypoint-initdb.d/): the
# pipeline's store gets a role and a database of its own next to Airflow's `airflow`.
#
#   NEWSAGG_DB_PASSWORD  the role's password (required)
#   NEWSAGG_DB_NAME      database and role name (default newsagg)
#
# The database uses the C locale: text compares byte by byte, as in SQLite, so the store
# orders and pages through ids the same way on both. The tables are created by the
# pipeline itself (newsagg's Store, on first use).
set -euo pipefail

: "${NEWSAGG_DB_PASSWORD:?NEWSAGG_DB_PASSWORD is not set}"
name="${NEWSAGG_DB_NAME:-newsagg}"

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -v name="$name" -v password="$NEWSAGG_DB_PASSWORD" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name" TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C';
SQL
echo "init-newsagg: database and role ${name} created"
