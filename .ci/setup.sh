#!/usr/bin/env bash
# Create .venv and install tpmon with its test tools; idempotent and quick when nothing changed.
# Needs only Python >= 3.11 (on Debian, python3-venv is installed when missing and we are root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${PYTHON:-}
if [ -z "$PY" ]; then
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            PY=$candidate
            break
        fi
    done
fi
if [ -z "$PY" ]; then
    echo "tpmon needs Python 3.11 or newer; none was found on PATH (set PYTHON=/path/to/python3.11)." >&2
    exit 1
fi

if [ ! -x .venv/bin/python ]; then
    if ! "$PY" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            version=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
            apt-get update -qq >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                -o DPkg::Lock::Timeout=300 "python${version}-venv" >&2 \
                || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >&2
            "$PY" -m venv .venv
        else
            echo "python -m venv failed: install your distribution's venv package (Debian: python3-venv)." >&2
            exit 1
        fi
    fi
fi

stamp=.venv/.tpmon-installed
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -U pip >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' >&2
    echo "$want" > "$stamp"
fi
