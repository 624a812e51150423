#!/bin/sh
# A partner's heartbeat written for Uptime Kuma's push monitor, as its documentation shows it: a GET of the push URL
# every interval. Used unchanged against tpmon: only PUSH_URL points at tpmon (…/api/push/<token>).
# PUSH_URL, INTERVAL (seconds, default 60) and COUNT (default: forever) come from the environment.
set -u
n=0
while [ "$n" -lt "${COUNT:-2147483647}" ]; do
    curl -fsS -m 10 --retry 5 -o /dev/null "${PUSH_URL}?status=up&msg=OK&ping=" || echo "push refused" >&2
    n=$((n + 1))
    sleep "${INTERVAL:-60}"
done
