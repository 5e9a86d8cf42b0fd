#!/usr/bin/env bash
# CI for the two publishable crates, openedx-client and openedx-standin (.ci/run calls it after
# the workspace's tests):
#   1. their docs build with every public item documented and no broken link;
#   2. clippy with every feature, warnings denied;
#   3. `cargo package` for both, then the packaged crates' own tests and doc tests, run from the
#      unpacked .crate files outside the workspace: what a user of the published crates gets;
#   4. the Python sample relying party against the stand-in binary, with injected faults.
# The crates' README recipes run in their test suites (tests/readme.rs), so in steps 3 and in the
# workspace's `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# The README recipes pick fields out of JSON with jq, and use curl.
if ! command -v jq >/dev/null || ! command -v curl >/dev/null; then
    echo "== installing jq and curl"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq curl >/dev/null
fi

crates=(-p openedx-client -p openedx-standin)

echo "== cargo doc (missing docs and broken links denied)"
RUSTDOCFLAGS="-D missing_docs -D warnings" cargo doc --locked --no-deps --all-features "${crates[@]}"

echo "== cargo clippy --all-features (crates)"
cargo clippy --locked --all-targets --all-features "${crates[@]}" -- -D warnings -D missing_docs

echo "== cargo package (both crates)"
cargo package --locked --allow-dirty "${crates[@]}"

# Unpacked outside the workspace, so that cargo treats them as the standalone crates they are.
# The client's dev-dependency on the stand-in is resolved from the unpacked stand-in, as it would
# be from the registry once both are published.
unpacked="$(mktemp -d)"
trap 'rm -rf "$unpacked"' EXIT
version="$(sed -n 's/^version = "\(.*\)"/\1/p' crates/openedx-client/Cargo.toml | head -n1)"
# -m: packaged files carry a fixed old mtime, which would let cargo take an earlier build of
# other sources for fresh; extracted now, they are rebuilt.
for crate in openedx-standin openedx-client; do
    tar -xzmf "${CARGO_TARGET_DIR:-target}/package/$crate-$version.crate" -C "$unpacked"
done
target="${CARGO_TARGET_DIR:-$PWD/target}"
packaged_target="$target/packaged"
standin="$unpacked/openedx-standin-$version"
echo "== cargo test --all-features (the packaged openedx-standin)"
(cd "$standin" && CARGO_TARGET_DIR="$packaged_target" cargo test --all-features)
echo "== cargo test --all-features (the packaged openedx-client, against the packaged stand-in)"
(cd "$unpacked/openedx-client-$version" \
    && CARGO_TARGET_DIR="$packaged_target" cargo test --all-features \
        --config "patch.crates-io.openedx-standin.path=\"$standin\"")

echo "== the Python sample relying party against the stand-in binary"
if ! python3 -c 'import requests' 2>/dev/null; then
    python3 -m pip install --quiet requests
fi
cargo build --locked --quiet -p openedx-standin --bin openedx-standin
python3 examples/python/check.py "$target/debug/openedx-standin" 2>/dev/null
