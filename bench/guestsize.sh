#!/usr/bin/env bash
# bench/guestsize.sh — the size of every example and template plugin as a
# WebAssembly module: the "Guest module size" figures of
# docs/PERFORMANCE.md and the "What a plugin costs" table of
# docs/writing-a-plugin.md.
#
#   bench/guestsize.sh [-v]
#
# Builds each Go plugin with the documented command
# (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared) and the C example
# with its build.sh (skipped, with a note, without clang and wasi-libc), and
# prints one line per module: name, bytes, MiB. With -v it also prints the
# per-package breakdown of each Go module (go run ./bench/guestsize).
set -euo pipefail
cd "$(dirname "$0")/.."
verbose=${1:-}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

size() { # size NAME FILE
	local n
	n=$(wc -c <"$2")
	awk -v name="$1" -v n="$n" 'BEGIN { printf "%-24s %10d bytes %6.2f MiB\n", name, n, n / 1048576 }'
}

for p in sdk/templates/notifier sdk/templates/writer sdk/templates/issuer examples/notifier-webhook examples/writer-pkcs12; do
	name=template-$(basename "$p")
	[ "${p%%/*}" = examples ] && name=$(basename "$p")
	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o "$out/$name.wasm" "./$p"
	size "$name" "$out/$name.wasm"
	if [ "$verbose" = -v ]; then
		go run ./bench/guestsize -top 25 "$out/$name.wasm" | sed 's/^/    /'
	fi
done
if examples/notifier-c/build.sh "$out/notifier-c.wasm" 2>"$out/c.err"; then
	size notifier-c "$out/notifier-c.wasm"
else
	echo "notifier-c               skipped: $(head -n 1 "$out/c.err")"
fi
