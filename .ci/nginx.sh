#!/usr/bin/env bash
# nginx from Debian for tests/test_nginx.py, which runs config/nginx-tpmon.conf in front of `tpmon serve`
# (idempotent). Installing starts no daemon here that the tests use: they run nginx as their own child process.
# Prints the binary's path as the last line.
set -euo pipefail

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        -o DPkg::Lock::Timeout=300 nginx >&2
fi
binary=$(command -v nginx || echo /usr/sbin/nginx)
"$binary" -v 2>&1 | head -n 1 >&2
echo "$binary"
