#!/usr/bin/env bash
# Refresh the site's gettext catalogs after changing a message in monitor/ (Python: _(), gettext(), ngettext(),
# N_(); templates: _(), {% trans %}): extract every message, then add the new ones to the French and English
# catalogs (monitor/locale/{fr,en}/LC_MESSAGES/messages.po) and drop those no longer used. Write the new texts in
# both .po files (an English msgstr may repeat its msgid), then run tests/test_catalogs.py: it fails on any
# message missing in either language. tpmon reads the .po files themselves at start (no .mo to compile);
# `--compile` also writes .mo files, for tools that want them (they are git-ignored).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

pybabel=.venv/bin/pybabel
[ -x "$pybabel" ] || pybabel=pybabel
template=$(mktemp --suffix=.pot)
trap 'rm -f "$template"' EXIT
"$pybabel" -q extract -F babel.cfg --project tpmon -k N_ -k said -k translate:2 -k translate_plural:2,3 --no-location --sort-output -o "$template" monitor
for lang in fr en; do
    catalog=monitor/locale/$lang/LC_MESSAGES/messages.po
    if [ -f "$catalog" ]; then
        "$pybabel" -q update -i "$template" -D messages -l "$lang" -o "$catalog" \
            --no-fuzzy-matching --ignore-obsolete --no-wrap
    else
        "$pybabel" -q init -i "$template" -D messages -l "$lang" -o "$catalog" --no-wrap
    fi
done
if [ "${1:-}" = "--compile" ]; then
    "$pybabel" -q compile -d monitor/locale -D messages --statistics
fi
echo "catalogs: $(grep -c '^msgid "[^"]' monitor/locale/fr/LC_MESSAGES/messages.po) messages" >&2
