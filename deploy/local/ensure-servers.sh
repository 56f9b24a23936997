#!/usr/bin/env bash
# Install Redis and PostgreSQL from Debian/Ubuntu packages when they are needed and
# absent. Skipped for a server whose URL is given (VIGIL_REDIS_URL, VIGIL_DATABASE_URL).
set -euo pipefail

need=()
if [ -z "${VIGIL_REDIS_URL:-}" ] && ! command -v redis-server >/dev/null; then
  need+=(redis-server)
fi
if [ -z "${VIGIL_DATABASE_URL:-}" ] && ! command -v initdb >/dev/null \
   && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
[ ${#need[@]} -eq 0 ] && exit 0

echo "installing ${need[*]} from the OS packages"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
# The packaged services are not needed: Vigil starts its own servers on loopback.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
for unit in redis-server postgresql; do
  $sudo systemctl disable --now "$unit" >/dev/null 2>&1 || true
done
