#!/usr/bin/env bash
# Refresh requirements-lock.txt: every package that tpmon, its tests and its demo install (the extras `test`
# and `demo`), pinned with the hashes of PyPI's files, for CPython 3.11 on Linux x86_64 (what CI runs).
# .ci/setup.sh installs exactly that. Run it after changing the dependencies in pyproject.toml, and commit both.
#   bash .ci/lock.sh                     keep the pins already in the lock, move only what pyproject.toml forces
#   bash .ci/lock.sh --upgrade           take the newest releases that the bounds in pyproject.toml allow
#   bash .ci/lock.sh -P NAME             upgrade one package
# The locking tool (uv, pinned below) lives in its own venv under ~/.cache, never in the project's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

UV_VERSION=0.13.9
tool="${XDG_CACHE_HOME:-$HOME/.cache}/tpmon/uv-${UV_VERSION}"
if [ ! -x "$tool/bin/uv" ]; then
    rm -rf "$tool"
    python3 -m venv "$tool"
    "$tool/bin/python" -m pip install -q --disable-pip-version-check "uv==${UV_VERSION}"
fi

# PyPI only (uv ignores pip's configuration and its local mirrors): the hashes are those of the public files.
"$tool/bin/uv" pip compile pyproject.toml --extra test --extra demo \
    --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --index-url https://pypi.org/simple --generate-hashes \
    --custom-compile-command "bash .ci/lock.sh" \
    --output-file requirements-lock.txt --quiet "$@"
echo "requirements-lock.txt: $(grep -c '^[a-z0-9]' requirements-lock.txt) packages pinned" >&2
