#!/bin/sh
# build.sh [OUT]: builds src/notifier.c into a WASI reactor, OUT (default
# notifier.wasm in the current directory), with Debian's clang, lld,
# wasi-libc and libclang-rt-14-dev-wasm32. No Makefile, no SDK: this is the
# whole build.
set -eu
src=$(cd "$(dirname "$0")" && pwd)/src/notifier.c
out=${1:-notifier.wasm}
CC=${CC:-clang}
if ! command -v "$CC" >/dev/null 2>&1 || ! command -v wasm-ld >/dev/null 2>&1 || [ ! -d /usr/include/wasm32-wasi ]; then
	echo "build.sh: clang, wasm-ld or wasi-libc is missing; install them with:" >&2
	echo "  apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32" >&2
	exit 127
fi
# -mexec-model=reactor: exports _initialize, no _start (ABI.md §2).
# -Wl,--strip-all: drops the name section; the exports stay.
exec "$CC" --target=wasm32-wasi -O2 -mexec-model=reactor -Wall -Wextra -Wl,--strip-all -o "$out" "$src"
