#!/usr/bin/env bash
# Build the Strom container image offline (no registry, nothing pulled):
#
#   1. compile a statically linked `strom` (glibc, -C target-feature=+crt-static)
#      for x86_64-unknown-linux-gnu; its output stays under
#      target/x86_64-unknown-linux-gnu/ and does not disturb target/release;
#   2. check that it is static and that it runs;
#   3. stage it with an empty data/ folder in target/docker-context;
#   4. `docker build` deploy/Dockerfile (FROM scratch) on that context.
#
# Usage: deploy/build-image.sh
# Environment:
#   STROM_IMAGE   image tag to build (default strom:dev, what the compose file runs)
#   CARGO         cargo to use (default: cargo on PATH)
set -euo pipefail

cd "$(dirname "$0")/.."

image="${STROM_IMAGE:-strom:dev}"
target=x86_64-unknown-linux-gnu
cargo="${CARGO:-cargo}"
context=target/docker-context

# step NAME: print what runs next and how long the previous step took.
step_start=$SECONDS
step_name=
step() {
    if [[ -n "$step_name" ]]; then
        echo "==> ${step_name}: ok in $((SECONDS - step_start))s"
    fi
    step_name=$1
    step_start=$SECONDS
    echo "==> ${step_name}"
}

step "static build: cargo build --release --bin strom --target ${target} (+crt-static)"
# Exactly these flags: CARGO_ENCODED_RUSTFLAGS (set when this runs under
# cargo) would override RUSTFLAGS, and flags such as target-cpu=native would
# make the image less portable.
unset CARGO_ENCODED_RUSTFLAGS
# The binary's path comes from cargo's JSON messages, so a different target
# directory (CARGO_TARGET_DIR, build.target-dir) works too.
# CARGO_PROFILE_RELEASE_DEBUG=0 drops the line tables the workspace's release
# profile keeps (debug = 1): less to compile and most of the image size
# (95 MB -> ~15 MB); symbols stay, so backtraces still name functions.
bin=$(RUSTFLAGS='-C target-feature=+crt-static' CARGO_PROFILE_RELEASE_DEBUG=0 \
    "$cargo" build --release --bin strom \
    --target "$target" --message-format=json-render-diagnostics \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
if [[ -z "$bin" || ! -x "$bin" ]]; then
    echo "build-image: cargo did not report the strom executable" >&2
    exit 1
fi
echo "binary: $bin ($(du -h "$bin" | cut -f1))"

step "check that it is static and runs"
if command -v file >/dev/null; then
    file -L "$bin"
fi
# glibc's ldd says "not a dynamic executable" (static) or "statically linked"
# (static-pie) and lists libraries otherwise.
linkage=$(ldd "$bin" 2>&1 || true)
if ! grep -qE 'not a dynamic executable|statically linked' <<<"$linkage"; then
    echo "build-image: $bin is dynamically linked:" >&2
    echo "$linkage" >&2
    exit 1
fi
echo "ldd: $(head -n 1 <<<"$linkage" | sed 's/^[[:space:]]*//')"
version=$("$bin" version)
echo "runs: $version"

step "stage ${context}"
rm -rf "$context"
mkdir -p "$context/data"
cp "$bin" "$context/strom"

step "docker build -f deploy/Dockerfile -t ${image} ${context}"
old_id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
# The version label: the last word of `strom version` (e.g. "strom 0.1.0").
docker build -f deploy/Dockerfile -t "$image" \
    --build-arg "STROM_VERSION=${version##* }" "$context"
new_id=$(docker image inspect -f '{{.Id}}' "$image")
# A rebuild leaves the previous image untagged; remove it unless something
# still uses it (then docker refuses, which is fine).
if [[ -n "$old_id" && "$old_id" != "$new_id" ]]; then
    docker rmi "$old_id" >/dev/null 2>&1 || true
fi
step done
echo "image: ${image} (${new_id})"
