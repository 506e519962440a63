#!/usr/bin/env bash
# The Writer of two commits side by side (issue #17): builds the writer bench of OLD and of the
# working tree, starts one production-like MariaDB (the bench's dedicated settings), and runs
# the two benches alternately ROUNDS times against it (and SQLite), so both see the machine at the
# same speed. Prints the bench lines of every run.
#
#   benches/writer_ab.sh [OLD_COMMIT] [ROUNDS]      (default 41679d7, 3)
#
# AB_SHAPES (default "100x8") lists page shapes, conversations per page x pages in flight:
# 100x8 is the synchronous query's pages awaited by 8 fetchers, 1000x16 the jobs path's
# results pages with the engine's 8 fetchers x max_outstanding_pages 2. Other BENCH_*
# variables (BENCH_BACKENDS, BENCH_CONVERSATIONS, ...) pass through to both benches.
set -euo pipefail
OLD=${1:-41679d7}
ROUNDS=${2:-3}
PORT=${AB_PORT:-3407}
TMP=$(mktemp -d)
cleanup() {
  mysqladmin -uroot -h127.0.0.1 -P"$PORT" shutdown 2>/dev/null || true
  git worktree remove --force "$TMP/old" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

bench_bin() { # newest writer_throughput binary under $1
  ls -t "$1"/target/release/deps/writer_throughput-* | grep -v '\.d$' | head -1
}
cargo build --release --bench writer_throughput
NEW_BIN=$(bench_bin .)
git worktree add --detach "$TMP/old" "$OLD" >/dev/null
cp -a target "$TMP/old/" && find "$TMP/old/src" "$TMP/old/benches" -type f -exec touch {} +
(cd "$TMP/old" && cargo build --release --bench writer_throughput)
OLD_BIN=$(bench_bin "$TMP/old")

INNODB="--innodb-buffer-pool-size=4G --innodb-log-file-size=2G --innodb-flush-log-at-trx-commit=1
  --innodb-doublewrite=1 --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci"
mkdir -p "$TMP/db/data"
# shellcheck disable=SC2086
mariadb-install-db --no-defaults --datadir="$TMP/db/data" --user=root \
  --auth-root-authentication-method=normal --skip-test-db $INNODB >"$TMP/db/install.log" 2>&1
# shellcheck disable=SC2086
mariadbd --no-defaults --user=root --datadir="$TMP/db/data" --port="$PORT" \
  --bind-address=127.0.0.1 --socket="$TMP/db/sock" --pid-file="$TMP/db/pid" --skip-log-bin \
  $INNODB --innodb-buffer-pool-dump-at-shutdown=0 --innodb-fast-shutdown=3 >"$TMP/db/log" 2>&1 &
for _ in $(seq 1 60); do
  mysqladmin -uroot -h127.0.0.1 -P"$PORT" ping >/dev/null 2>&1 && break
  sleep 1
done
mysql -uroot -h127.0.0.1 -P"$PORT" -e "CREATE DATABASE IF NOT EXISTS test"

export SLUICE_TEST_MYSQL="mysql://root@127.0.0.1:$PORT/test"
for i in $(seq 1 "$ROUNDS"); do
  for shape in ${AB_SHAPES:-100x8}; do
    export BENCH_PAGE=${shape%x*} BENCH_OUTSTANDING=${shape#*x}
    echo "== round $i, pages of $BENCH_PAGE, $BENCH_OUTSTANDING in flight: old ($OLD) $(date -u +%H:%M:%S)"
    "$OLD_BIN" --bench 2>&1 | grep -E "^(mysql|sqlite)"
    echo "== round $i, pages of $BENCH_PAGE, $BENCH_OUTSTANDING in flight: new ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src benches || echo '+changes')) $(date -u +%H:%M:%S)"
    # `shared` is the server of SLUICE_TEST_MYSQL: the one started above.
    BENCH_SERVERS=shared "$NEW_BIN" --bench 2>&1 | grep -E "^(mysql|sqlite)"
  done
done
