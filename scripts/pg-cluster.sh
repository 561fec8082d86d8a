#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for ledger's PostgreSQL tests and benches.
#
#   eval "$(bash scripts/pg-cluster.sh start)"   # exports LEDGER_TEST_PG
#   bash scripts/pg-cluster.sh stop DIR
#   bash scripts/pg-cluster.sh pause DIR [fast|immediate]; ... resume DIR
#                                   # (a server stopped and started again)
#
# Installs PostgreSQL from the Debian packages if it is missing, runs
# initdb into a fresh temporary directory and starts the server on a
# private socket directory and a free loopback port. Clients sign in with
# a password (scram-sha-256), as on a real server. As root (CI), the
# server runs as the `postgres` user, which refuses to run as root.
set -euo pipefail

bin_dir() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && { echo "$d"; return; }
    done
    return 1
}

install() {
    bin_dir >/dev/null 2>&1 && return
    echo "installing PostgreSQL from the Debian packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y postgresql >&2 || { apt-get update >&2 && apt-get install -y postgresql >&2; }
}

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    install
    local bin dir port
    bin=$(bin_dir)
    dir=$(mktemp -d /tmp/ledger-pg.XXXXXX)
    chmod 755 "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    echo "secret" >"$dir/pw"
    [ "$(id -u)" = 0 ] && chown postgres "$dir/pw"
    as_owner "$bin/initdb" -D "$dir/data" -U ledger --pwfile="$dir/pw" \
        --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1
    certificates "$dir"
    # ledger_tls may sign in over TLS only: a test that it can proves TLS.
    # ledger_cert signs in by a client certificate the CA signed, alone.
    { printf 'hostssl all ledger_tls 127.0.0.1/32 scram-sha-256\n'
      printf 'host all ledger_tls 127.0.0.1/32 reject\n'
      printf 'hostssl all ledger_cert 127.0.0.1/32 cert\n'
      printf 'host all ledger_cert 127.0.0.1/32 reject\n'
      cat "$dir/data/pg_hba.conf"; } >"$dir/hba" && cat "$dir/hba" >"$dir/data/pg_hba.conf"
    # The server's options, kept for `resume`.
    echo "-k $dir -p $port -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on -c ssl=on -c ssl_cert_file=$dir/tls/server.pem -c ssl_key_file=$dir/tls/server.key -c ssl_ca_file=$dir/tls/ca.pem" >"$dir/options"
    resume "$dir"
    as_owner psql -q -h "$dir" -p "$port" -U ledger -d postgres \
        -c "CREATE ROLE ledger_tls LOGIN CREATEDB PASSWORD 'secret'" \
        -c "CREATE ROLE ledger_cert LOGIN CREATEDB" >/dev/null
    echo "export LEDGER_TEST_PG='postgresql://ledger:secret@127.0.0.1:$port/postgres'"
    echo "export LEDGER_TEST_PG_CA='$dir/tls/ca.pem'"
    echo "export LEDGER_TEST_PG_DIR='$dir'"
}

# certificates DIR: a CA of its own, a server certificate it signed for
# the name localhost only (so that verify-full to 127.0.0.1 fails where
# verify-ca passes), and a client certificate for the user ledger_cert,
# its key readable by whoever started the cluster alone.
certificates() {
    local tls="$1/tls"
    command -v openssl >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y openssl >&2; }
    mkdir -p "$tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ledger test CA" \
        -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost\n' >"$tls/ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
        -CAcreateserial -days 2 -extfile "$tls/ext" -out "$tls/server.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=ledger_cert" \
        -keyout "$tls/client.key" -out "$tls/client.csr" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >"$tls/client.ext"
    openssl x509 -req -in "$tls/client.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
        -CAcreateserial -days 2 -extfile "$tls/client.ext" -out "$tls/client.pem" 2>/dev/null
    chmod 600 "$tls/server.key" "$tls/client.key"
    [ "$(id -u)" = 0 ] && chown -R postgres "$tls" && chown root "$tls/client.key" "$tls/client.pem"
    chmod 755 "$tls"; chmod 644 "$tls/ca.pem" "$tls/client.pem"
}

# resume DIR: starts the server of the cluster in DIR (after `pause`).
resume() {
    as_owner "$(bin_dir)/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 60 \
        -o "$(cat "$1/options")" start >/dev/null
}

# pause DIR [MODE]: stops the server, keeping the cluster (MODE: fast, or
# immediate, which is as abrupt as a crash).
pause() {
    as_owner "$(bin_dir)/pg_ctl" -D "$1/data" -m "${2:-fast}" -w -t 60 stop >/dev/null
}

stop() {
    local dir=${1:-${LEDGER_TEST_PG_DIR:-}}
    [ -n "$dir" ] || { echo "usage: $0 stop DIR" >&2; exit 2; }
    as_owner "$(bin_dir)/pg_ctl" -D "$dir/data" -m fast stop >/dev/null || true
    rm -rf "$dir"
}

case "${1:-}" in
start) start ;;
stop) stop "${2:-}" ;;
pause) pause "${2:?usage: $0 pause DIR [fast|immediate]}" "${3:-fast}" ;;
resume) resume "${2:?usage: $0 resume DIR}" ;;
*) echo "usage: $0 start | stop DIR | pause DIR [fast|immediate] | resume DIR" >&2; exit 2 ;;
esac
