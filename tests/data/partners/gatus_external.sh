#!/bin/sh
# A partner's check reported to a Gatus external endpoint, as Gatus' documentation shows it: a POST with the
# endpoint's key and a Bearer token. Used unchanged against tpmon: GATUS_URL points at tpmon's operators' listener.
# GATUS_URL, KEY (<group>_<name>), TOKEN, INTERVAL (seconds, default 60), COUNT (default: forever) from the environment.
set -u
n=0
while [ "$n" -lt "${COUNT:-2147483647}" ]; do
    curl -fsS -m 10 -X POST -H "Authorization: Bearer ${TOKEN}" \
        "${GATUS_URL}/api/v1/endpoints/${KEY}/external?success=true&error=&duration=42ms" || echo "push refused" >&2
    n=$((n + 1))
    sleep "${INTERVAL:-60}"
done
