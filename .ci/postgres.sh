#!/usr/bin/env bash
# Start the local PostgreSQL for the tests (idempotent); prints the test database URL as its last line.
set -euo pipefail

DB=tpmon_test
PASSWORD=postgres
URL="postgresql+psycopg://postgres:${PASSWORD}@127.0.0.1:5432/${DB}"

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        -o DPkg::Lock::Timeout=300 postgresql >&2
fi

VERSION=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "${VERSION} main"; then
    pg_createcluster "${VERSION}" main >&2
fi
# A second `start` exits 2: start only when it is not running.
pg_ctlcluster "${VERSION}" main status >/dev/null 2>&1 || pg_ctlcluster "${VERSION}" main start >&2

psql_admin() {
    runuser -u postgres -- psql --no-psqlrc -v ON_ERROR_STOP=1 -qtA "$@"
}

for _ in $(seq 1 50); do
    psql_admin -c "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.2
done

psql_admin -c "ALTER ROLE postgres PASSWORD '${PASSWORD}'" >/dev/null
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname='${DB}'")" != "1" ]; then
    psql_admin -c "CREATE DATABASE ${DB}" >/dev/null
fi

echo "${URL}"
