#!/usr/bin/env bash
# What the test suite needs besides the Python packages, made ready: Redis and
# PostgreSQL answering on loopback (started with this machine's own commands
# when they are down), the Unleash server (npm's unleash-server, cached outside
# the repo) and headless Chromium (Debian's package). `make test` runs this
# first, so a fresh clone needs no other step; `.ci/run` only calls `make test`.
#
# Idempotent and quick when everything is there (well under a second). Each
# step that cannot be done says what is missing and how to get it, and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "test-prereqs: $*" >&2; }
fail() { say "$*"; exit 1; }

as_root() {  # run a command as root, or say why it cannot be
  if (( EUID == 0 )); then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else fail "need root for: $* (run it yourself, then make test again)"
  fi
}

apt_install() {  # package...
  command -v apt-get >/dev/null || fail "no apt-get: install $* yourself"
  say "installing $* (Debian packages)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

redis_up() {
  exec 3<>/dev/tcp/127.0.0.1/6379 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  local reply=""
  read -r -t 2 reply <&3 || true
  exec 3>&- 3<&-
  [[ "$reply" == +PONG* ]]
}

pg_up() {
  if command -v pg_isready >/dev/null; then
    pg_isready -q -h 127.0.0.1 -p 5432
  else
    (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
  fi
}

wait_for() {  # name, check function, seconds
  local deadline=$((SECONDS + $3))
  until "$2"; do
    (( SECONDS > deadline )) && fail "$1 did not come up within $3 s"
    sleep 0.5
  done
}

# redis-server on PATH: fault tests start private servers (a cluster, a sentinel).
command -v redis-server >/dev/null || apt_install redis-server
if ! redis_up; then
  say "Redis does not answer on 127.0.0.1:6379: starting it"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for Redis redis_up 30
fi

if ! pg_up; then
  say "PostgreSQL does not answer on 127.0.0.1:5432: starting it"
  [[ -d /etc/postgresql ]] || fail "PostgreSQL is not installed (apt-get install postgresql; \
trust auth on 127.0.0.1, a database named test)"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_for PostgreSQL pg_up 60
fi

# The Unleash server the flag tests run against: about 40 s the first time.
scripts/install-unleash.sh >/dev/null

# Headless Chromium for the dashboard's and the report's browser tests.
command -v chromium >/dev/null || apt_install chromium
