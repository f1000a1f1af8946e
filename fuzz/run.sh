#!/usr/bin/env bash
# Builds every fuzz target, then runs each for N seconds (default 60), starting from
# its seeds in fuzz/corpus/<target>/. Fails, printing the fuzzer's report and the
# saved input (fuzz/artifacts/<target>/), as soon as a target crashes, leaks, times
# out or runs out of memory.
#
#   bash fuzz/run.sh [seconds]
#
# Needs cargo-fuzz (`cargo install --locked cargo-fuzz@0.13.2`; .ci/run installs it).
# The toolchain is the stable one: cargo-fuzz passes nightly-only flags
# (-Zsanitizer, -Cpasses=sancov-module), which RUSTC_BOOTSTRAP=1 lets stable accept.
#
# Sanitizer: none by default (STROM_FUZZ_SANITIZER=address for AddressSanitizer, which
# also links on stable: rust-std ships its runtime). The code under test is safe Rust
# but for MmapAlloc, whose large blocks are mmap'd where ASan does not track them, and
# the C codecs (zstd, lz4) are not instrumented either way; ASan would mostly cost:
# measured here, ~5x fewer executions per second and twice the build time. What the
# fuzzers look for is panics (overflow checks and debug assertions are on), aborts,
# hangs and memory blow-ups, none of which needs a sanitizer.
#
# Memory limits: the targets install strom_server::MmapAlloc as the broker does, so a
# wire-controlled `Vec::with_capacity` of >= 256 MiB is an untouched NORESERVE mapping,
# as in production, not a crash the broker cannot have. -rss_limit_mb=2048 (libFuzzer's
# default, checked on resident memory, sanitizer or not) then fails exactly the inputs
# that make a decoder really fill memory. (-malloc_limit_mb needs a sanitizer's malloc
# hooks; with ASan it defaults to the RSS limit and sees only blocks under 256 MiB.)
# -timeout=10 fails an input that loops (one input takes microseconds).
set -euo pipefail

cd "$(dirname "$0")"
seconds=${1:-60}
sanitizer=${STROM_FUZZ_SANITIZER:-none}
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# 16 codegen units (cargo-fuzz's default is 1): the build takes a fraction of the time
# for a few percent fewer executions per second.
build_flags=(--sanitizer "$sanitizer" --codegen-units 16)

start=$SECONDS
cargo fuzz build "${build_flags[@]}"
echo "fuzz: built in $((SECONDS - start))s (sanitizer: $sanitizer)"

mkdir -p target/logs
for target in $(cargo fuzz list); do
    # New inputs go to target/corpus (ignored by git); the committed seeds stay as they are.
    mkdir -p "target/corpus/$target"
    log="target/logs/$target.log"
    echo "fuzz: $target for ${seconds}s"
    if ! cargo fuzz run "${build_flags[@]}" "$target" "target/corpus/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        tail -n 80 "$log"
        echo "fuzz: $target FAILED (full log: fuzz/$log; input saved under fuzz/artifacts/$target/)"
        exit 1
    fi
    # The last status line and the final stats: runs, exec/s, coverage, corpus.
    grep -E '^#[0-9]+' "$log" | tail -n 1
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log"
done
echo "fuzz: every target ran ${seconds}s without a crash"
