#!/usr/bin/env bash
# Install Prometheus and promtool from Debian for the observability tests (idempotent). Installing starts
# no daemon here: the tests run Prometheus as their own child process.
set -euo pipefail

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        -o DPkg::Lock::Timeout=300 prometheus >&2
fi
promtool --version 2>&1 | head -n 1
