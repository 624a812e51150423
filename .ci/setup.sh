#!/usr/bin/env bash
# Create .venv and install exactly requirements-lock.txt (tpmon's dependencies, its tests' and its demo's, with
# their hashes), then tpmon itself; idempotent and quick when nothing changed. Needs only Python >= 3.11 (on
# Debian, python3-venv is installed when missing and we are root). .ci/lock.sh refreshes the lock.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${PYTHON:-}
if [ -z "$PY" ]; then
    # 3.11 first: the lock is made for it, and CI runs it
    for candidate in python3.11 python3.12 python3.13 python3; do
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

make_venv() {
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
}

# The stamp changes with the lock, the project's metadata and this script: then the venv is made anew, so that
# it holds the lock and nothing left over from an older one.
stamp=.venv/.tpmon-installed
want=$(cat requirements-lock.txt pyproject.toml .ci/setup.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -x .venv/bin/python ]; then
    rm -rf .venv
    make_venv
    if ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        echo "warning: requirements-lock.txt is made for Python 3.11; installing it on $(.venv/bin/python -V)." >&2
    fi
    pip=(.venv/bin/python -m pip --disable-pip-version-check --quiet)
    "${pip[@]}" install --require-hashes -r requirements-lock.txt >&2
    "${pip[@]}" install --no-deps --editable . >&2
    "${pip[@]}" check >&2
    echo "$want" > "$stamp"
fi

# Bytecode of tpmon's own modules and tests, made here once: every `tpmon` process (the tests start hundreds) reads
# it instead of compiling ~190 modules again (≈ 0.3 s of CPU each), even where PYTHONDONTWRITEBYTECODE=1 keeps
# Python from writing it itself. Only what changed is compiled again; a tree it cannot write into goes without.
.venv/bin/python -m compileall -q -j 0 monitor tests >/dev/null 2>&1 || true
