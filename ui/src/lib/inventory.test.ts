import { describe, expect, it } from 'vitest';
import { asInventory, defaultDisk, diskID, type Disk } from './inventory';

describe('asInventory', () => {
  it.each([null, undefined, 'x', 42, [], true])('rejects %j', (v) => {
    expect(asInventory(v)).toBeUndefined();
  });

  it('makes every list safe to iterate, whatever the agent sent', () => {
    const inv = asInventory({ disks: 'nope', nics: [null, 3, { name: 'eth0' }], memory: { dimms: {} }, cpu: { flags: ['sse', 7] } })!;
    expect(inv.disks).toEqual([]);
    expect(inv.nics).toEqual([{ name: 'eth0' }]);
    expect(inv.memory?.dimms).toEqual([]);
    expect(inv.cpu?.flags).toEqual(['sse']);
    expect(inv.gpus).toEqual([]);
    expect(inv.warnings).toEqual([]);
  });
});

describe('defaultDisk', () => {
  const d = (p: Disk): Disk => ({ size_bytes: 1e9, ...p });
  it.each<[string, Disk[], string | undefined]>([
    ['first fixed disk by stable path, not by kernel name', [
      d({ name: 'sda', by_path: 'pci-0000:00:1f.2-ata-2' }),
      d({ name: 'sdb', by_path: 'pci-0000:00:1f.2-ata-1' }),
    ], '/dev/disk/by-path/pci-0000:00:1f.2-ata-1'],
    ['skips removable, read-only and empty disks', [
      d({ name: 'sda', by_path: 'pci-0000:00:14.0-usb-0:1', removable: true }),
      d({ name: 'sr0', by_path: 'pci-0000:00:01.1-ata-1', read_only: true }),
      d({ name: 'vdb', by_path: 'pci-0000:00:05.0', size_bytes: 0 }),
      d({ name: 'vda', by_path: 'pci-0000:00:06.0' }),
    ], '/dev/disk/by-path/pci-0000:00:06.0'],
    ['disks with a stable path come before those without', [
      d({ name: 'nvme0n1', path: '/dev/nvme0n1' }),
      d({ name: 'sda', by_path: 'pci-0000:00:17.0-ata-1' }),
    ], '/dev/disk/by-path/pci-0000:00:17.0-ata-1'],
    ['byte order, like the API (":" sorts before letters)', [
      d({ name: 'a', by_path: 'pci-0000:5e:00.0-nvme-1' }),
      d({ name: 'b', by_path: 'pci-0000:00:17.0-ata-1.0' }),
    ], '/dev/disk/by-path/pci-0000:00:17.0-ata-1.0'],
    ['none left', [d({ name: 'sda', removable: true })], undefined],
  ])('%s', (_, disks, want) => {
    const got = defaultDisk(disks);
    expect(got && diskID(got)).toBe(want);
  });
});
