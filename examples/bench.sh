#!/usr/bin/env bash
# Builds the app and the benchmark in release mode and runs every scenario (see BENCHMARKS.md).
#   examples/bench.sh                                        # SQLite
#   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test examples/bench.sh   # and PostgreSQL
#   BENCH_MYSQL_URL=mysql://root@127.0.0.1:3306/test examples/bench.sh            # and MySQL/MariaDB
#   BENCH_SECONDS=10 examples/bench.sh                       # longer runs
# The load comes from wrk (Debian's package), installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk; else sudo apt-get install -y -qq wrk; fi
fi
cargo build --locked --release --bin profiles --example bench
exec target/release/examples/bench "$@"
