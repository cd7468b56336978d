#!/usr/bin/env bash
# fuzz.sh — `make fuzz` (long) and the fuzzing line of `make test` (short):
# every fuzz target in the repository, one after another, each for
# $FUZZTIME. Go fuzzes one target per `go test -fuzz` invocation, so the
# targets are found here (every `func FuzzXxx(f *testing.F)` in a
# *_test.go file) rather than listed: a new target is picked up by itself.
#
# What a run does not cover, `go test` does on every run: the seed corpus
# of each target (its f.Add values and the files of
# testdata/fuzz/<FuzzName>/) runs as ordinary tests. A fuzzing run looks
# for new inputs; what it finds is written to testdata/fuzz/<FuzzName>/ by
# go itself, which turns it into a regression test once the bug is fixed
# and the file committed.
#
# Environment:
#   FUZZTIME          time per target (go's -fuzztime: 1m, 30s, or 5000x
#                     for a number of inputs). Default 1m.
#   FUZZMINIMIZETIME  go's -fuzzminimizetime: how long one input that
#                     failed or widened coverage is minimised. Default 10s
#                     (go's own 60s can stall a short run on one input).
#   FUZZ_RUN          an extended regexp over "package/FuzzName" to fuzz
#                     only some targets, e.g. FUZZ_RUN='^ipxe/' or
#                     FUZZ_RUN='FuzzConfig$'.
#   FUZZ_PARALLEL     workers per target (go's -parallel). Default: go's,
#                     GOMAXPROCS.
#   FUZZ_FRESH=1      start from the seed corpus alone, in a cache of this
#                     run's own, rather than from go's fuzz cache
#                     ($GOCACHE/fuzz), where every earlier run left the
#                     inputs that widened coverage. Replaying that cache
#                     counts against -fuzztime: after a long run, a 2 s
#                     run would spend its time replaying and mutate
#                     nothing. The short form sets it; the long form
#                     builds on the cache.
#
# How long (2 cores, 2026-11-29, with other test suites running beside it,
# load average 5-7): the short form, 49 targets for 2 s each, took 180 s;
# about 2 s of it per target is the fuzzing, about 1.5 s starting the
# workers and replaying the corpus. Each package's instrumented test binary
# (go test -c -fuzz) is built while the package before it is fuzzed; the
# first one, and any after a change to a package with many dependencies
# (api, cmd/foundry, appliance), can take 10-40 s with a cold build cache.
# The long form (make fuzz, 1m each) is 49 minutes of fuzzing plus the
# same start-up, about 52 minutes (estimated, not timed whole).
#
# How many inputs: compare a target's count with its own earlier runs, not
# with other targets. In a 1 min run on 2 cores (2026-11-29): pure parsers
# 10,000-55,000 inputs a second (token FuzzNormalize 2.4 million a
# minute); targets that write files or send datagrams hundreds to about a
# thousand (inventory FuzzCollect 640/s, pxe FuzzRequest 1,300/s, agent
# FuzzWriteSeed 33/s: it formats a FAT file system each time); targets
# through the API and Badger 50-3,000 (FuzzAgentRegister 230/s,
# FuzzListMachines 2,700/s, FuzzAgentCalls 40/s: a registration and a
# call each). A run shows 0/sec while the fuzzer minimises an input that
# widened coverage (FUZZMINIMIZETIME bounds it). A count that drops
# sharply between runs of the same target means the code under it became
# slower.
#
# Exit status: 0 when no target found anything (and every package built);
# 1 otherwise, naming each target that found an input and where go wrote
# it. Go 1.26's coordinator sometimes fails a target with its own
# -fuzztime deadline ("context deadline exceeded", no input written:
# golang/go#75804, fixed in Go 1.27): such a target is run once more, and
# if it happens again it is listed as not counted rather than failed.
# Logs: build/fuzz/<package>.<FuzzName>.log; builds: build/fuzz/bin/.
set -uo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
fuzztime=${FUZZTIME:-1m}
minimize=${FUZZMINIMIZETIME:-10s}
filter=${FUZZ_RUN:-}
out=build/fuzz
mkdir -p "$out/bin"

# Targets as "dir name", in a stable order. A target in a file with a
# build constraint would need its tags here; there is none today, and
# fuzz targets belong in files every `go test` builds.
mapfile -t targets < <(grep -rE --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' \
	--exclude-dir=node_modules --exclude-dir=build --exclude-dir=.git . |
	sed -E 's#^\./(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*).*#\1 \2#' | sort -u)

parallel=()
[ -n "${FUZZ_PARALLEL:-}" ] && parallel=(-test.parallel="$FUZZ_PARALLEL")
gocache=$("$GO" env GOCACHE)
fresh=""
if [ -n "${FUZZ_FRESH:-}" ]; then
	fresh=$(mktemp -d /tmp/foundry-fuzz.XXXXXX)
	trap 'rm -rf "$fresh"' EXIT
fi

# fuzz DIR NAME LOG runs one target with its package's instrumented test
# binary, in the package's directory (where its testdata is), with the
# fuzz cache go test itself would use ($GOCACHE/fuzz/<import path>).
fuzz() {
	local cache=${fresh:-$gocache/fuzz}/$importpath
	(cd "$1" && "$bin" -test.run='^$' -test.fuzz="^$2\$" -test.fuzztime="$fuzztime" \
		-test.fuzzminimizetime="$minimize" -test.fuzzcachedir="$cache" "${parallel[@]}") >"$3" 2>&1
}

# The targets this run fuzzes, and their packages in order.
selected=()
dirs=()
last=""
for t in "${targets[@]}"; do
	if [ -n "$filter" ] && ! [[ "${t% *}/${t#* }" =~ $filter ]]; then
		continue
	fi
	selected+=("$t")
	[ "$last" = "${t% *}" ] || dirs+=("${t% *}")
	last=${t% *}
done

# One instrumented test binary per package (go test -fuzz would link one
# per target), built in the background while the package before it is
# fuzzed: build DIR starts it; the binary's .rc file holds its status.
binof() { echo "$PWD/$out/bin/${1//\//_}.test"; }
build() {
	local b
	b=$(binof "$1")
	rm -f "$b" "$b.rc"
	("$GO" test -c -fuzz=. -o "$b" "./$1" >"$b.log" 2>&1; echo $? >"$b.rc") &
}
[ "${#dirs[@]}" -gt 0 ] && build "${dirs[0]}"

start=$(date +%s)
found=()
flaky=()
ran=0
current=""
next=0
for t in "${selected[@]}"; do
	dir=${t% *}
	name=${t#* }
	log="$out/${dir//\//_}.$name.log"
	t0=$(date +%s)
	if [ "$current" != "$dir" ]; then
		current=$dir
		next=$((next + 1))
		bin=$(binof "$dir")
		while [ ! -s "$bin.rc" ]; do sleep 0.1; done
		[ "$next" -lt "${#dirs[@]}" ] && build "${dirs[$next]}"
		importpath=$("$GO" list "./$dir")
		if [ "$(cat "$bin.rc")" != 0 ]; then
			printf 'FAIL  %-28s (does not build; see %s)\n' "$dir" "$bin.log"
			found+=("$dir: does not build")
		fi
	fi
	[ "$(cat "$bin.rc")" = 0 ] || continue
	fuzz "$dir" "$name" "$log"
	rc=$?
	written=$(grep -oE 'testdata/fuzz/[^ ]+' "$log" | head -1)
	# Go's coordinator can report its own -fuzztime deadline as a failure
	# without an input (golang/go#75804, fixed in go1.27): once more, then
	# it is noted, not counted.
	if [ "$rc" -ne 0 ] && [ -z "$written" ] && grep -q '^    context deadline exceeded$' "$log"; then
		fuzz "$dir" "$name" "$log"
		rc=$?
		written=$(grep -oE 'testdata/fuzz/[^ ]+' "$log" | head -1)
		if [ "$rc" -ne 0 ] && [ -z "$written" ] && grep -q '^    context deadline exceeded$' "$log"; then
			printf 'FLAKE %-28s %-24s go reported its own deadline twice (golang/go#75804)\n' "$dir" "$name"
			flaky+=("$dir/$name")
			continue
		fi
	fi
	ran=$((ran + 1))
	execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
	if [ "$rc" -eq 0 ]; then
		printf 'ok    %-28s %-24s %4ds %10s inputs\n' "$dir" "$name" $(($(date +%s) - t0)) "${execs:--}"
		continue
	fi
	if [ -n "$written" ]; then
		printf 'FOUND %-28s %-24s %4ds  -> %s/%s\n' "$dir" "$name" $(($(date +%s) - t0)) "$dir" "$written"
		found+=("$dir/$name: $dir/$written")
	else
		printf 'FAIL  %-28s %-24s (no input written; see %s)\n' "$dir" "$name" "$log"
		found+=("$dir/$name: failed without an input, see $log")
	fi
	grep -E -- '--- FAIL|_test.go:[0-9]+:|panic:' "$log" | head -5 | sed 's/^/      /'
done

echo "fuzzed $ran targets for $fuzztime each in $(($(date +%s) - start))s"
if [ "${#flaky[@]}" -gt 0 ]; then
	echo "not counted (golang/go#75804): ${flaky[*]}"
fi
if [ "${#found[@]}" -gt 0 ]; then
	echo "found something:"
	printf '  %s\n' "${found[@]}"
	echo "each input is now a test case; reproduce with: go test -run '<FuzzName>/<file>' ./<package>"
	exit 1
fi
