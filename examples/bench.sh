#!/usr/bin/env bash
# Builds the app and the benchmark in release mode and runs every scenario (see BENCHMARKS.md).
#   examples/bench.sh                                        # SQLite
#   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test examples/bench.sh   # and PostgreSQL
#   BENCH_SECONDS=10 examples/bench.sh                       # longer runs
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --release --bin profiles --example bench
exec target/release/examples/bench "$@"
