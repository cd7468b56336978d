#!/usr/bin/env python3
"""Writes testdata/qemu: a hand-made /sys and /proc tree of the e2e test's
BIOS machine (QEMU i440fx, 2 CPUs, 2 GiB RAM, e1000 NIC 52:54:00:12:34:56,
an 8 GiB IDE disk and a DVD drive, std VGA, an IPMI KCS BMC from
ipmi-bmc-sim), plus an NFS mount and an iSCSI session so that those parsers
have something to read. Values follow what QEMU 7.2 with SeaBIOS shows.
Run from testdata/: ./make-qemu.py"""
import os, shutil, struct

R = "qemu"
shutil.rmtree(R, ignore_errors=True)

def w(path, content):
    p = os.path.join(R, path.lstrip("/"))
    os.makedirs(os.path.dirname(p), exist_ok=True)
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(p, mode) as f:
        f.write(content if isinstance(content, bytes) or content.endswith("\n") or content == "" else content + "\n")

def ln(path, target):
    p = os.path.join(R, path.lstrip("/"))
    os.makedirs(os.path.dirname(p), exist_ok=True)
    os.symlink(target, p)

# --- DMI identity (SMBIOS decoded by the kernel)
dmi = {
    "sys_vendor": "QEMU", "product_name": "Standard PC (i440FX + PIIX, 1996)",
    "product_version": "pc-i440fx-7.2", "product_serial": "QEMU-SERIAL-0001",
    "product_uuid": "6A1E3B2C-0000-4000-8000-525400123456",
    "bios_vendor": "SeaBIOS", "bios_version": "1.16.2-debian-1.16.2-1",
    "bios_date": "04/01/2014", "chassis_vendor": "QEMU", "chassis_type": "1",
    "chassis_version": "pc-i440fx-7.2", "chassis_serial": "", "chassis_asset_tag": "",
}
for k, v in dmi.items():
    w("/sys/devices/virtual/dmi/id/" + k, v)
ln("/sys/class/dmi/id", "../../devices/virtual/dmi/id")

# --- raw SMBIOS: type 17 (one 2 GiB DIMM), type 38 (IPMI KCS), type 127
def table(typ, handle, body, strings):
    s = b"".join(x.encode() + b"\0" for x in strings) + b"\0"
    if not strings:
        s = b"\0\0"
    return struct.pack("<BBH", typ, 4 + len(body), handle) + body + s

t17 = struct.pack("<HHHHHBBBBBHHBBBBBIHHHH",
    0x1000, 0xFFFE, 0xFFFF, 0xFFFF, 2048,  # array, error handle, widths, size MB
    0x09, 0, 1, 0, 0x07, 0x0002, 0,       # DIMM, set, locator#1, bank none, RAM, Other, speed
    2, 0, 0, 0, 0, 0, 0, 0, 0, 0)          # manufacturer#2, serial, asset, part, attr, ext, cfg speed, volts
t38 = struct.pack("<BBBBQBB", 0x01, 0x20, 0x20, 0xFF, 0xCA3, 0x00, 0)  # KCS, v2.0, I/O 0xca2
dmi_table = (table(17, 0x1100, t17, ["DIMM 0", "QEMU"]) +
             table(38, 0x2600, t38, []) + table(127, 0x7F00, b"", []))
w("/sys/firmware/dmi/tables/DMI", dmi_table)

# --- CPUs: one socket, two cores, no SMT
flags = "fpu de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 syscall nx lm rep_good nopl cpuid pni cx16 hypervisor lahf_lm svm 3dnowprefetch vmmcall"
cpus = []
for i in range(2):
    cpus.append(f"""processor\t: {i}
vendor_id\t: AuthenticAMD
cpu family\t: 15
model\t\t: 107
model name\t: QEMU Virtual CPU version 2.5+
stepping\t: 1
cpu MHz\t\t: 2596.000
cache size\t: 512 KB
physical id\t: 0
siblings\t: 2
core id\t\t: {i}
cpu cores\t: 2
apicid\t\t: {i}
fpu\t\t: yes
flags\t\t: {flags}
bogomips\t: 5192.00
address sizes\t: 40 bits physical, 48 bits virtual
power management:
""")
w("/proc/cpuinfo", "\n".join(cpus) + "\n")
w("/proc/meminfo", "MemTotal:        2030996 kB\nMemFree:         1935224 kB\nMemAvailable:    1893412 kB\n")
w("/proc/mounts", """rootfs / rootfs rw 0 0
proc /proc proc rw,relatime 0 0
sysfs /sys sysfs rw,relatime 0 0
10.77.0.1:/srv/nfs/tools /mnt/tools nfs4 ro,relatime,vers=4.2,addr=10.77.0.1 0 0
[fd00::1]:/export/my\\040data /mnt/my\\040data nfs rw,vers=3,addr=fd00::1 0 0
""")

# --- PCI: i440fx chipset, IDE, ACPI, VGA, e1000
pci = "/sys/devices/pci0000:00/"
devs = [
    ("0000:00:00.0", "0x8086", "0x1237", "0x060000", "0x1af4", "0x1100", None),
    ("0000:00:01.0", "0x8086", "0x7000", "0x060100", "0x1af4", "0x1100", None),
    ("0000:00:01.1", "0x8086", "0x7010", "0x010180", "0x1af4", "0x1100", "ata_piix"),
    ("0000:00:01.3", "0x8086", "0x7113", "0x068000", "0x1af4", "0x1100", "piix4_smbus"),
    ("0000:00:02.0", "0x1234", "0x1111", "0x030000", "0x1af4", "0x1100", "bochs-drm"),
    ("0000:00:03.0", "0x8086", "0x100e", "0x020000", "0x1af4", "0x1100", "e1000"),
]
for addr, ven, dev, cls, sven, sdev, drv in devs:
    d = pci + addr + "/"
    for k, v in (("vendor", ven), ("device", dev), ("class", cls),
                 ("subsystem_vendor", sven), ("subsystem_device", sdev), ("revision", "0x00")):
        w(d + k, v)
    if drv:
        ln(d + "driver", "../../../bus/pci/drivers/" + drv)
    ln("/sys/bus/pci/devices/" + addr, "../../../devices/pci0000:00/" + addr)

# --- disks on the PIIX IDE controller: sda (8 GiB) on ata1, sr0 on ata2
ide = pci + "0000:00:01.1/"
for port, host, name, model, sectors, rem, rot, serial in (
        (1, 0, "sda", "QEMU HARDDISK", 16777216, "0", "1", "QM00001"),
        (2, 1, "sr0", "QEMU DVD-ROM", 0, "1", "1", "QM00003")):
    w(ide + f"ata{port}/ata_port/ata{port}/port_no", str(port))
    sdev = ide + f"ata{port}/host{host}/target{host}:0:0/{host}:0:0:0/"
    w(sdev + "vendor", "ATA     " if name == "sda" else "QEMU    ")
    w(sdev + "model", model.ljust(16))
    w(sdev + "wwid", f"t10.ATA     {model:<40}{serial}")
    vpd = serial.encode()
    w(sdev + "vpd_pg80", bytes([0, 0x80, 0, len(vpd)]) + vpd)
    ln(sdev + "driver", "../../../../../../../bus/scsi/drivers/" + ("sd" if name == "sda" else "sr"))
    b = sdev + "block/" + name + "/"
    w(b + "size", str(sectors)); w(b + "removable", rem); w(b + "ro", "0")
    w(b + "queue/rotational", rot)
    ln(b + "device", "../../../" + f"{host}:0:0:0")
    ln("/sys/block/" + name, "../devices/pci0000:00/0000:00:01.1/" +
       f"ata{port}/host{host}/target{host}:0:0/{host}:0:0:0/block/{name}")
for name in ("loop0", "ram0"):
    b = "/sys/devices/virtual/block/" + name + "/"
    w(b + "size", "0"); w(b + "removable", "0")
    ln("/sys/block/" + name, "../devices/virtual/block/" + name)

# --- NICs: e1000 eth0 with link; lo (virtual, not reported)
n = pci + "0000:00:03.0/net/eth0/"
for k, v in (("address", "52:54:00:12:34:56"), ("operstate", "up"), ("carrier", "1"),
             ("speed", "1000"), ("type", "1")):
    w(n + k, v)
ln(n + "device", "../../../0000:00:03.0")
ln("/sys/class/net/eth0", "../../devices/pci0000:00/0000:00:03.0/net/eth0")
for k, v in (("address", "00:00:00:00:00:00"), ("operstate", "unknown"), ("type", "772")):
    w("/sys/devices/virtual/net/lo/" + k, v)
ln("/sys/class/net/lo", "../../devices/virtual/net/lo")

# --- IPMI device (ipmi_si + ipmi_devintf loaded)
w("/sys/devices/virtual/ipmi/ipmi0/dev", "241:0")
ln("/sys/class/ipmi/ipmi0", "../../devices/virtual/ipmi/ipmi0")

# --- one iSCSI session with one connection
sess = "/sys/devices/platform/host2/session1/"
w(sess + "iscsi_session/session1/targetname", "iqn.2003-01.org.linux-iscsi.lab:disk1")
w(sess + "iscsi_session/session1/initiatorname", "iqn.1993-08.org.debian:01:52540012")
ln("/sys/class/iscsi_session/session1", "../../devices/platform/host2/session1/iscsi_session/session1")
c = sess + "connection1:0/iscsi_connection/connection1:0/"
w(c + "persistent_address", "10.77.0.1"); w(c + "persistent_port", "3260")
ln("/sys/class/iscsi_connection/connection1:0",
   "../../devices/platform/host2/session1/connection1:0/iscsi_connection/connection1:0")
