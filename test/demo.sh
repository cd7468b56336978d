#!/usr/bin/env bash
# The `make demo` lab: the appliance serving a private network namespace
# (foundry-demo) with one emulated BIOS machine that PXE-boots into
# discovery. The real Debian image (make os-image) is in the appliance's
# image library, and the cluster "demo" installs it by default (profile
# debian-12). Nothing answers DHCP outside the namespace; the dashboard is
# forwarded to 127.0.0.1 on the host.
#
#   test/demo.sh start|stop|status
set -euo pipefail

NS=foundry-demo
STATE=/run/foundry-demo
DATA=/var/lib/foundry-demo
PORT=${FOUNDRY_DEMO_PORT:-8080}
MAC=52:54:00:12:34:56
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OS_IMAGE=$ROOT/build/os/debian-12-amd64.raw.zst
API=http://10.77.0.1:8080

stop() {
	for p in qemu socat foundry; do
		if [ -f "$STATE/$p.pid" ]; then
			kill "$(cat "$STATE/$p.pid")" 2>/dev/null || true
			rm -f "$STATE/$p.pid"
		fi
	done
	sleep 1
	ip netns del "$NS" 2>/dev/null || true
}

status() {
	for p in foundry socat qemu; do
		if [ -f "$STATE/$p.pid" ] && kill -0 "$(cat "$STATE/$p.pid")" 2>/dev/null; then
			echo "$p: running (pid $(cat "$STATE/$p.pid"))"
		else
			echo "$p: not running"
		fi
	done
}

start() {
	stop
	mkdir -p "$STATE" "$DATA"
	[ -f "$OS_IMAGE" ] || { echo "$OS_IMAGE is missing: run make os-image (make demo does)" >&2; exit 1; }
	# The appliance's own image directory: the boot files are copied in
	# (it serves no symlinks out of it), the library lives beside them and
	# stays across demo restarts, as the database does.
	mkdir -p "$DATA/images"
	cp -r "$ROOT/images/ipxe" "$ROOT/images/discovery" "$DATA/images/"
	ip netns add "$NS"
	ip -n "$NS" link set lo up
	ip -n "$NS" link add br0 type bridge
	ip -n "$NS" addr add 10.77.0.1/24 dev br0
	ip -n "$NS" link set br0 up
	ip -n "$NS" tuntap add dev tap0 mode tap
	ip -n "$NS" link set tap0 master br0 up

	cat >"$STATE/foundry.yaml" <<EOF
data_dir: $DATA
image_dir: $DATA/images
http:
  listen: ":8080"
  advertise: "http://10.77.0.1:8080"
discovery:
  ttl: 24h
segments:
  - name: lab
    interface: br0
    subnet: 10.77.0.0/24
    range: [10.77.0.100, 10.77.0.200]
    router: 10.77.0.1
    dns: [10.77.0.1]
    lease_time: 1h
    mode: dhcp
    discovery: true
EOF
	setsid ip netns exec "$NS" "$ROOT/bin/foundry" serve --config "$STATE/foundry.yaml" \
		>"$STATE/foundry.log" 2>&1 </dev/null &
	echo $! >"$STATE/foundry.pid"
	for _ in $(seq 100); do
		ip netns exec "$NS" bash -c 'exec 3<>/dev/tcp/10.77.0.1/8080' 2>/dev/null && break
		sleep 0.1
	done

	# The dashboard on the host's loopback, relayed into the namespace.
	setsid socat "TCP-LISTEN:$PORT,bind=127.0.0.1,reuseaddr,fork" \
		"EXEC:ip netns exec $NS socat STDIO TCP\:10.77.0.1\:8080" </dev/null >/dev/null 2>&1 &
	echo $! >"$STATE/socat.pid"

	[ -f "$STATE/disk.img" ] || truncate -s 8G "$STATE/disk.img"
	setsid ip netns exec "$NS" qemu-system-x86_64 -accel tcg -display none -m 2048 -boot n \
		-serial "file:$STATE/machine-console.log" -monitor "unix:$STATE/monitor.sock,server,nowait" \
		-netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
		-device e1000,netdev=n0,mac=$MAC \
		-drive file="$STATE/disk.img",format=raw,if=virtio \
		</dev/null >"$STATE/qemu.log" 2>&1 &
	echo $! >"$STATE/qemu.pid"

	token=$(cat "$DATA/admin-token")
	library "$token"
	cat <<EOF

Foundry demo is running.
  Dashboard:        http://127.0.0.1:$PORT/
  Admin API token:  $token
  Appliance log:    $STATE/foundry.log
  Machine console:  tail -f $STATE/machine-console.log   (MAC $MAC, PXE-booting into discovery)
  CLI:              FOUNDRY_URL=http://127.0.0.1:$PORT FOUNDRY_TOKEN=$token bin/foundry machines ls
  Production image: library image $IMAGE (Debian 12 from make os-image), profile
                    debian-12, the default of cluster demo: approve into demo with an SSH key
  Log in after:     ip netns exec $NS ssh debian@<the machine's address>
  Stop:             make demo-stop
EOF
}

# library puts the Debian image built by make os-image into the appliance's
# image library (uploaded through the API, checked against its SHA-256)
# under a name that carries its checksum, so that a rebuilt image is a new
# library image; the profile debian-12 names it and is the cluster demo's
# default. Older builds that no profile names any more are deleted.
library() {
	local token=$1 sum state old
	cli() { ip netns exec "$NS" "$ROOT/bin/foundry" --server "$API" --token "$token" "$@"; }
	sum=$(awk -v f="$(basename "$OS_IMAGE")" '$2 == f {print $1}' "$ROOT/build/os/debian-12-amd64.sha256")
	[ -n "$sum" ] || { echo "no checksum of $OS_IMAGE in build/os/debian-12-amd64.sha256" >&2; exit 1; }
	IMAGE=debian-12-${sum:0:12}
	# The table's first two columns are the name and the state.
	state=$(cli images ls | awk -v n="$IMAGE" '$1 == n {print $2}')
	if [ "$state" != ready ]; then
		[ -z "$state" ] || cli images rm "$IMAGE" >/dev/null
		echo "uploading $OS_IMAGE into the image library as $IMAGE"
		cli images upload "$IMAGE" "$OS_IMAGE" --sha256 "$sum" >/dev/null
	fi
	if cli profiles show debian-12 >/dev/null 2>&1; then
		cli profiles update debian-12 --image "$IMAGE" >/dev/null
	else
		cli profiles create debian-12 --kind image --image "$IMAGE" \
			--description "Debian 12 with cloud-init, built by make os-image" >/dev/null
	fi
	cli clusters show demo >/dev/null 2>&1 ||
		cli clusters create demo --default-profile debian-12 --description "make demo" >/dev/null
	for old in $(cli images ls | awk 'NR > 1 && $1 ~ /^debian-12-/ {print $1}'); do
		[ "$old" = "$IMAGE" ] || cli images rm "$old" >/dev/null 2>&1 || true
	done
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
status) status ;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
