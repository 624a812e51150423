#!/usr/bin/env bash
# Node.js and npm from Debian, for the dashboards' type-check against @grafana/schema (idempotent).
set -euo pipefail

if ! command -v npm >/dev/null 2>&1; then
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        -o DPkg::Lock::Timeout=300 nodejs npm >&2
fi
echo "node $(node --version), npm $(npm --version)"
