#!/usr/bin/env bash
# build-spire.sh builds the spire-server and spire-agent binaries that the
# integration tests (internal/spiretest) run, and prints the directory that
# holds them as the last line on stdout. Everything else goes to stderr.
#
# The SPIRE version comes from tools/spire/go.mod, a module of its own so that
# SPIRE's dependency graph never reaches the root go.mod. ("go install
# ...@version" cannot be used: the module proxy refuses SPIRE's version list.)
#
# Binaries are cached per version in
#   ${SVIDAGENT_CACHE:-$HOME/.cache/svidagent}/spire-<version>/bin
# When both binaries are already there the script only prints the directory.
# A build goes to a temporary directory that is renamed into place when it is
# complete, so an interrupted build never leaves a partial cache behind.
#
# cgo is required: SPIRE's sqlite3 datastore (mattn/go-sqlite3) is only
# compiled in with cgo; with CGO_ENABLED=0 the server builds but fails at
# start-up with "sqlite3 is not a supported dialect when CGO is not enabled".
# The agent would build without cgo, but building both with the same settings
# lets them share the compiled dependency cache. A C compiler (gcc) is needed.
# A cold build took 314 s on 2 cores (2026-12-03, empty caches, other builds
# running), most of it compiling; the script prints the time it took.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/tools/spire"

version="$(awk '
	$1 == "require" && $2 == "github.com/spiffe/spire" { print $3; exit }
	$1 == "github.com/spiffe/spire" { print $2; exit }
' "$tools/go.mod")"
if [[ -z "$version" ]]; then
	echo "build-spire: no github.com/spiffe/spire requirement in $tools/go.mod" >&2
	exit 1
fi

cache="${SVIDAGENT_CACHE:-$HOME/.cache/svidagent}"
dest="$cache/spire-$version"
bin="$dest/bin"

if [[ -x "$bin/spire-server" && -x "$bin/spire-agent" ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.spire-$version.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "build-spire: building SPIRE $version into $bin (cold build: ~5 min on 2 cores)" >&2
start=$SECONDS
chmod 755 "$tmp"
mkdir -p "$tmp/bin"
# go build runs in the background so that a signal interrupts the wait below
# at once; the trap passes it on as SIGINT, which makes the go command stop
# and clean up, and the EXIT trap then removes the temporary directory.
(
	cd "$tools"
	# sum.golang.org lacks two aws-sdk modules that SPIRE depends on; go.sum
	# carries their hashes, so the checksum database is not needed for them.
	export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}github.com/aws"
	CGO_ENABLED=1 exec go build -trimpath -o "$tmp/bin/" \
		github.com/spiffe/spire/cmd/spire-server \
		github.com/spiffe/spire/cmd/spire-agent
) >&2 &
build=$!
trap 'kill -INT "$build" 2>/dev/null || true; wait "$build" || true; exit 1' HUP INT TERM
wait "$build"
trap - HUP INT TERM
echo "build-spire: built in $((SECONDS - start))s" >&2

# A concurrent run may have won the race; its result is as good as ours.
if ! mv -T "$tmp" "$dest" 2>/dev/null; then
	if [[ ! -x "$bin/spire-server" || ! -x "$bin/spire-agent" ]]; then
		echo "build-spire: cannot move the build into $dest; remove that directory and retry" >&2
		exit 1
	fi
fi
echo "$bin"
