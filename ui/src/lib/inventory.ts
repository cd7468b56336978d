// The discovery agent's inventory as the dashboard reads it. The API passes
// the agent's JSON through unchanged (its schema is docs/inventory.md, the Go
// types in discovery-os/inventory), so the OpenAPI document types it only as
// an object; this file mirrors the fields the dashboard shows, every one
// optional, and reads them defensively: the JSON came from a machine.

export interface Disk {
  name?: string;
  path?: string;
  size_bytes?: number;
  vendor?: string;
  model?: string;
  serial?: string;
  wwn?: string;
  rotational?: boolean;
  removable?: boolean;
  read_only?: boolean;
  by_path?: string;
  driver?: string;
}

export interface LLDP {
  chassis_id?: string;
  port_id?: string;
  port_description?: string;
  system_name?: string;
  vlan?: number;
}

export interface NIC {
  name?: string;
  mac?: string;
  driver?: string;
  speed_mbps?: number;
  link?: boolean;
  operstate?: string;
  pci_address?: string;
  lldp?: LLDP | null;
}

export interface PCIDevice {
  address?: string;
  vendor_id?: string;
  device_id?: string;
  vendor?: string;
  device?: string;
  class?: string;
  class_name?: string;
  driver?: string;
}

export interface DIMM {
  locator?: string;
  bank?: string;
  size_bytes?: number;
  type?: string;
  form_factor?: string;
  speed_mts?: number;
  manufacturer?: string;
  part_number?: string;
}

export interface Inventory {
  schema_version?: number;
  collected_at?: string;
  system?: { vendor?: string; product?: string; version?: string; serial?: string; uuid?: string; sku?: string; family?: string };
  baseboard?: { vendor?: string; product?: string; version?: string; serial?: string; asset_tag?: string };
  bios?: { vendor?: string; version?: string; date?: string };
  chassis?: { vendor?: string; type?: string; serial?: string; asset_tag?: string };
  cpu?: { model?: string; vendor?: string; sockets?: number; cores?: number; threads?: number; flags?: string[] };
  memory?: { total_bytes?: number; usable_bytes?: number; dimms?: DIMM[] };
  disks?: Disk[];
  nics?: NIC[];
  gpus?: PCIDevice[];
  pci?: PCIDevice[];
  bmc?: { interface?: string; type?: string; address?: string } | null;
  nfs_mounts?: { server?: string; export?: string; mount_point?: string; fstype?: string; options?: string }[];
  iscsi_sessions?: { session?: string; target_name?: string; portal?: string; initiator?: string }[];
  warnings?: string[];
}

/** asInventory accepts whatever the API returned and yields a safe shape. */
export function asInventory(v: unknown): Inventory | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const inv = v as Inventory;
  const arr = <T,>(x: T[] | undefined | null): T[] => (Array.isArray(x) ? x.filter((e) => e && typeof e === 'object') : []);
  return {
    ...inv,
    disks: arr(inv.disks),
    nics: arr(inv.nics),
    gpus: arr(inv.gpus),
    pci: arr(inv.pci),
    nfs_mounts: arr(inv.nfs_mounts),
    iscsi_sessions: arr(inv.iscsi_sessions),
    memory: { ...(inv.memory ?? {}), dimms: arr(inv.memory?.dimms) },
    cpu: { ...(inv.cpu ?? {}), flags: Array.isArray(inv.cpu?.flags) ? inv.cpu!.flags.filter((f) => typeof f === 'string') : [] },
    warnings: Array.isArray(inv.warnings) ? inv.warnings.filter((w) => typeof w === 'string') : [],
  };
}

/** diskID is how approval names a disk: its stable by-path name when known. */
export function diskID(d: Disk): string {
  if (d.by_path) return d.by_path.startsWith('/') ? d.by_path : `/dev/disk/by-path/${d.by_path}`;
  return d.path || (d.name ? `/dev/${d.name}` : '');
}

/**
 * defaultDisk is the disk approval picks when none is named (docs/spec.md §4), by
 * the API's rule: the first non-removable, writable, non-empty disk in order
 * of its stable by-path name (disks without one last), not a blind /dev/sda.
 */
export function defaultDisk(disks: readonly Disk[]): Disk | undefined {
  const fixed = disks.filter((d) => !d.removable && !d.read_only && (d.size_bytes ?? 0) > 0);
  const sorted = [...fixed].sort((a, b) => {
    if (!a.by_path !== !b.by_path) return a.by_path ? -1 : 1;
    return byteOrder(a.by_path ?? '', b.by_path ?? '') || byteOrder(a.name ?? '', b.name ?? '');
  });
  return sorted[0];
}

// byteOrder compares like Go's strings.Compare (for ASCII), unlike
// localeCompare, which may ignore punctuation.
function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
