#!/bin/sh
# capture.sh DEST copies the small /sys and /proc files that the inventory
# collector reads from this machine into DEST, keeping sysfs symlinks
# relative, so that tests can run the collector against a real machine's
# tree. It copies file contents only (never a whole directory).
set -eu
DEST=${1:?usage: capture.sh DEST}

copyfile() {
	for f in "$@"; do
		[ -e "$f" ] || [ -L "$f" ] || continue
		mkdir -p "$DEST$(dirname "$f")"
		if [ -L "$f" ]; then
			ln -sfn "$(readlink "$f")" "$DEST$f"
		elif [ -f "$f" ]; then
			cat "$f" >"$DEST$f" 2>/dev/null || rm -f "$DEST$f"
		fi
	done
}

# copydir DIR NAMES...: the named files of one directory.
copydir() {
	d=$1
	shift
	for n in "$@"; do copyfile "$d/$n"; done
}

mkdir -p "$DEST/proc"
cat /proc/cpuinfo >"$DEST/proc/cpuinfo"
cat /proc/meminfo >"$DEST/proc/meminfo"
# Only the mounts the collector reports (NFS) and the basic ones: the rest
# describe the capturing host's own setup and are no test's business.
awk '$3 ~ /^nfs/ || $2 == "/" || $2 == "/proc" || $2 == "/sys" || $2 == "/dev"' \
	/proc/mounts >"$DEST/proc/mounts"
for f in /sys/class/dmi/id/*; do
	case $(basename "$f") in
	*_serial | product_uuid | modalias | uevent) ;; # serials kept out of the repo
	*) copyfile "$f" ;;
	esac
done
copyfile /sys/firmware/dmi/tables/DMI

for b in /sys/block/*; do
	copyfile "$b"
	r=$(realpath "$b")
	copydir "$r" size removable ro queue/rotational device
	[ -e "$r/device" ] || continue
	d=$(realpath "$r/device")
	copydir "$d" model vendor serial wwid nsid driver subsystem
	copydir "$d/device" model serial wwid
done

for n in /sys/class/net/*; do
	copyfile "$n"
	r=$(realpath "$n")
	copydir "$r" address operstate speed carrier type device
	[ -e "$r/device" ] || continue
	d=$(realpath "$r/device")
	copydir "$d" driver subsystem
done

for p in /sys/bus/pci/devices/*; do
	copyfile "$p"
	r=$(realpath "$p")
	copydir "$r" vendor device class subsystem_vendor subsystem_device revision driver
done

for s in /sys/class/iscsi_session/* /sys/class/ipmi/*; do
	[ -e "$s" ] || continue
	copyfile "$s"
done
