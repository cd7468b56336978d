#!/usr/bin/env bash
# unit.sh — `make unit`: every test that needs neither root nor a network
# namespace, run as a user without privileges, so that a test which quietly
# depends on root fails here instead of passing only in CI.
#
# Run as root, it compiles the test binaries with root's Go caches (the
# module cache under /root is not readable by anyone else), then drops to a
# system user ($FOUNDRY_UNIT_USER, default foundry-unit, created if missing)
# to run them. Run as anyone else, it runs them as that user. Tests run with
# -short, in their package's directory, as `go test` would; tests that need
# root skip one by one and say why. Exit status: 0 only if no test failed.
#
# Verbose logs: build/unit/<package>.log. FOUNDRY_UNIT_RUN=regexp narrows
# the tests, as -run does.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
GO=${GO:-go}
out=$root/build/unit
user=${FOUNDRY_UNIT_USER:-foundry-unit}
timeout=${FOUNDRY_UNIT_TIMEOUT:-10m}

rm -rf "$out"
mkdir -p "$out/bin"
chmod 755 "$out" "$out/bin"

# One `go test -c` for every package: it shares one build, as `go test` does.
# Each binary is named after the last element of its import path. A package
# that does not build fails; the others still run, as with `go test`.
compiled=0
"$GO" test -c -o "$out/bin/" ./... >"$out/compile.log" 2>&1 || compiled=$?
if [ "$compiled" -ne 0 ]; then grep -v '^?' "$out/compile.log" || true; fi
mapfile -t pkgs < <("$GO" list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}' ./...)

# as runs a command as the unprivileged user (or as ourselves when we are
# not root), with a clean environment and a home of its own.
work=$(mktemp -d /tmp/foundry-unit.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
if [ "$(id -u)" -eq 0 ]; then
	if ! id -u "$user" >/dev/null 2>&1; then
		useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
	fi
	mkdir -p "$work/home" "$work/tmp"
	chown "$user:" "$work/home" "$work/tmp"
	as() {
		setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups --inh-caps=-all --bounding-set=-all \
			env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			HOME="$work/home" TMPDIR="$work/tmp" LANG=C.UTF-8 "$@"
	}
else
	mkdir -p "$work/home" "$work/tmp"
	as() {
		env -i PATH="$PATH" HOME="$work/home" TMPDIR="$work/tmp" LANG=C.UTF-8 "$@"
	}
fi

# The tests read testdata from their package's directory. When the user
# cannot read the tree (a checkout under /root), they run in a copy, and so
# do the binaries.
tree=$root bins=$out/bin
if ! as test -r "$root/go.mod" || ! as test -x "$bins"; then
	tree=$work/tree bins=$work/bin
	mkdir -p "$tree"
	tar -C "$root" --exclude=./.git --exclude='./build' --exclude='./bin' --exclude=node_modules \
		--exclude=./images/discovery -cf - . | tar -C "$tree" -xf -
	cp -R "$out/bin" "$bins"
	chmod -R a+rX "$tree" "$bins"
	echo "unit: $user cannot read $root; running in a copy at $work"
fi

run=()
if [ -n "${FOUNDRY_UNIT_RUN:-}" ]; then run=(-test.run "$FOUNDRY_UNIT_RUN"); fi

failed=0 passed=0 skipped=0 ran=0
for line in "${pkgs[@]}"; do
	pkg=${line%% *} dir=${line#* }
	bin=$bins/${pkg##*/}.test
	log=$out/$(echo "${pkg#*/foundry/}" | tr / _).log
	if [ ! -x "$bin" ]; then
		echo "FAIL  $pkg [build failed]"
		failed=$((failed + 1)) ran=$((ran + 1))
		continue
	fi
	rc=0
	(cd "$tree/${dir#"$root"}" && as "$bin" -test.short -test.count=1 -test.v=true \
		-test.timeout="$timeout" "${run[@]}") >"$log" 2>&1 || rc=$?
	# Counts include subtests and fuzz seed corpora; a skip's reason is the
	# last line the test logged before it.
	# nstest.Main's packages report their skips before any test starts.
	read -r p f s < <(awk '
		/^ *--- PASS: / {p++} /^ *--- FAIL: / {f++} /^ *--- SKIP: / || /^nstest: skip / {s++}
		END {print p+0, f+0, s+0}' "$log")
	passed=$((passed + p)) skipped=$((skipped + s))
	if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
		failed=$((failed + 1))
		echo "FAIL  $pkg (exit $rc): $p passed, $f failed, $s skipped"
		sed 's/^/    /' "$log"
	else
		echo "ok    $pkg: $p passed, $s skipped"
	fi
	awk '
		/^=== (RUN|CONT|NAME) / {cur = $3}
		/^    / && !/^ *(---|===) / {sub(/^ +/, ""); why[cur] = $0}
		/^ *--- SKIP: / {name = $3; printf "        skip %s: %s\n", name, why[name]}
		/^nstest: skip / {sub(/^nstest: /, ""); print "        " $0}' "$log"
	ran=$((ran + 1))
done
echo "unit: $ran packages as $(as id -un), $passed passed, $skipped skipped, $failed packages failed; logs in ${out#"$root"/}/"
[ "$failed" -eq 0 ] && [ "$compiled" -eq 0 ]
