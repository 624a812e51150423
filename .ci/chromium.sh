#!/usr/bin/env bash
# Chromium from Debian for the browser tests (idempotent); prints its path as the last line (TPMON_CHROMIUM).
# Never `playwright install`: Playwright drives this system Chromium.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
    apt-get update >&2
    # Without --no-install-recommends it pulls systemd and dozens of packages.
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        -o DPkg::Lock::Timeout=300 chromium >&2
fi
# Debian's /usr/bin/chromium is a wrapper script that prints a harmless shell warning on stderr here.
{ chromium --version 2>/dev/null || true; } | head -n 1 >&2
command -v chromium
