#!/usr/bin/env bash
# build-stepca.sh builds smallstep's step-ca binary that the issuer-stepca
# integration test (examples/issuer_stepca_test.go) runs, and prints the
# directory that holds it as the last line on stdout. Everything else goes to
# stderr.
#
# The step-ca version comes from tools/stepca/go.mod, a module of its own so
# that step-ca's dependency graph never reaches the root go.mod.
#
# The binary is cached per version in
#   ${SVIDAGENT_CACHE:-$HOME/.cache/svidagent}/stepca-<version>/bin
# When it is already there the script only prints the directory. A build goes
# to a temporary directory that is renamed into place when it is complete, so
# an interrupted build never leaves a partial cache behind.
#
# cgo is off: with cgo, step-ca's PKCS#11/YubiKey KMS support needs
# libpcsclite's headers, and the test needs neither. Right after a SPIRE build
# (shared module and build caches) it took 60 s on 2 cores; alone, a few minutes.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/tools/stepca"

version="$(awk '
	$1 == "require" && $2 == "github.com/smallstep/certificates" { print $3; exit }
	$1 == "github.com/smallstep/certificates" { print $2; exit }
' "$tools/go.mod")"
if [[ -z "$version" ]]; then
	echo "build-stepca: no github.com/smallstep/certificates requirement in $tools/go.mod" >&2
	exit 1
fi

cache="${SVIDAGENT_CACHE:-$HOME/.cache/svidagent}"
dest="$cache/stepca-$version"
bin="$dest/bin"

if [[ -x "$bin/step-ca" ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.stepca-$version.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "build-stepca: building step-ca $version into $bin (cold build: 1-5 min on 2 cores)" >&2
start=$SECONDS
chmod 755 "$tmp"
mkdir -p "$tmp/bin"
# go build runs in the background so that a signal interrupts the wait below
# at once; the trap passes it on as SIGINT, which makes the go command stop
# and clean up, and the EXIT trap then removes the temporary directory.
(
	cd "$tools"
	CGO_ENABLED=0 exec go build -trimpath -o "$tmp/bin/" \
		github.com/smallstep/certificates/cmd/step-ca
) >&2 &
build=$!
trap 'kill -INT "$build" 2>/dev/null || true; wait "$build" || true; exit 1' HUP INT TERM
wait "$build"
trap - HUP INT TERM
echo "build-stepca: built in $((SECONDS - start))s" >&2

# A concurrent run may have won the race; its result is as good as ours.
if ! mv -T "$tmp" "$dest" 2>/dev/null; then
	if [[ ! -x "$bin/step-ca" ]]; then
		echo "build-stepca: cannot move the build into $dest; remove that directory and retry" >&2
		exit 1
	fi
fi
echo "$bin"
