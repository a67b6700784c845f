#!/usr/bin/env bash
# The end-to-end load harness (issue #8): installs what it needs, builds the release
# binary, then runs bench/load.py, which prints the table BENCHMARKS.md shows.
#
#   bench/load.sh                               # the full table: 35-45 minutes on 2 cores
#   bench/load.sh --runs 1 --subscribers 2000 --scale 10000     # a quick look
#   bench/load.sh --help                        # every option
#
# Needs: Debian/Ubuntu (apt) for Postfix's smtp-sink and smtp-source and GNU time; pip for
# rss2email. Only loopback is used once they are installed. The Postfix daemon itself is
# never started.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ] || need+=(postfix)
[ -x /usr/bin/time ] || need+=(time)
if [ "${#need[@]}" -gt 0 ]; then
  echo "load.sh: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Keep the package's postinst from starting the Postfix daemon: only its test tools are used.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
  fi
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ "$created_policy" = 1 ] && rm -f "$policy"
fi
command -v r2e >/dev/null 2>&1 || python3 -m pip install --quiet rss2email

cargo build --release --locked
# The SMTP client alone (benches/smtp_floor.rs), run beside paper-digest in every SMTP round.
floor=$(cargo bench --locked --bench smtp_floor --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "smtp_floor":
        print(m["executable"])')
exec python3 bench/load.py --floor "$floor" "$@"
