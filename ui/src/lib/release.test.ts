import { describe, expect, it } from 'vitest';
import { machine, registration } from '../test/fixtures';
import { awaitingBind, awaitingFirstBoot, currentFirstBoot, deployTime, knownHosts, pendingWipe, redeployNext, wipeScope } from './release';

const approval = (at: string, network: { mode: 'dhcp' | 'static'; address?: string } = { mode: 'dhcp' }) => ({
  approved_by: 'token:admin', approved_at: at, network,
});
const keys = ['ssh-ed25519 AAAAC3Nza1 root@node-01', 'ecdsa-sha2-nistp256 AAAAE2Vj2 '];
const fb = { at: '2026-01-01T00:10:00Z', hostname: 'node-01.lab', ssh_host_keys: keys };

describe('after the install', () => {
  it('waits for the first boot only while an installed machine is provisioning', () => {
    expect(awaitingFirstBoot(machine({ state: 'provisioning', installed: true }))).toBe(true);
    expect(awaitingFirstBoot(machine({ state: 'provisioning', installed: false }))).toBe(false);
    expect(awaitingFirstBoot(machine({ state: 'ready', installed: true }))).toBe(false);
  });

  it('shows the deploy time of a ready machine only', () => {
    expect(deployTime(machine({ state: 'ready', deploy_seconds: 252.4 }))).toBe('4 min 12 s');
    expect(deployTime(machine({ state: 'ready', deploy_seconds: 3 * 3600 + 60 }))).toBe('3 h 1 min');
    expect(deployTime(machine({ state: 'ready' }))).toBe('');
    expect(deployTime(machine({ state: 'discovered', deploy_seconds: 252 }))).toBe('');
    expect(deployTime(machine({ state: 'ready', deploy_seconds: -1 }))).toBe('');
  });

  it.each([
    ['name and the last address', { ip: '10.77.0.123', approval: approval('2026-01-01T00:00:00Z') },
      ['node-01.lab,10.77.0.123 ssh-ed25519 AAAAC3Nza1 root@node-01', 'node-01.lab,10.77.0.123 ecdsa-sha2-nistp256 AAAAE2Vj2']],
    ['the static address wins', { ip: '10.77.0.123', approval: approval('2026-01-01T00:00:00Z', { mode: 'static', address: '10.77.0.50/24' }) },
      ['node-01.lab,10.77.0.50 ssh-ed25519 AAAAC3Nza1 root@node-01', 'node-01.lab,10.77.0.50 ecdsa-sha2-nistp256 AAAAE2Vj2']],
    ['the approved name when the report has none', { first_boot: { ...fb, hostname: undefined }, ip: undefined },
      ['node-01 ssh-ed25519 AAAAC3Nza1 root@node-01', 'node-01 ecdsa-sha2-nistp256 AAAAE2Vj2']],
  ])('writes known_hosts lines: %s', (_, p, want) => {
    expect(knownHosts(machine({ state: 'ready', hostname: 'node-01', first_boot: fb, ...p }))).toEqual(want);
  });

  it('shows no host keys of a system that is gone or being wiped', () => {
    // Released: discovered again, the report still on record.
    expect(knownHosts(machine({ state: 'discovered', first_boot: fb }))).toEqual([]);
    // Approved again since (a netboot profile is ready at once).
    const later = machine({ state: 'ready', first_boot: fb, approval: approval('2026-01-02T00:00:00Z') });
    expect(currentFirstBoot(later)).toBeUndefined();
    expect(knownHosts(later)).toEqual([]);
    expect(knownHosts(machine({ state: 'ready', first_boot: { at: fb.at, ssh_host_keys: null } }))).toEqual([]);
  });
});

describe('release and redeploy', () => {
  it('describes a pending wipe and the registrations that have wiped', () => {
    const a = registration({ wiped_at: '2026-01-01T02:00:00Z' });
    const b = registration();
    expect(pendingWipe(machine({ state: 'inventoried' }))).toBeUndefined();
    expect(pendingWipe(machine({ state: 'discovered', wipe: { full: true } }))).toEqual({ full: true, wiped: [] });
    expect(pendingWipe(machine({ state: 'inventoried', wipe: { full: false }, registrations: [a, b] }))).toEqual({ full: false, wiped: [a] });
    expect(wipeScope(true)).toBe('every byte of every fixed disk');
    expect(wipeScope(false)).toContain('first and last MiB');
  });

  it('waits for a bind only where the API offers it and no boot is bound', () => {
    expect(awaitingBind(machine({ state: 'approved', registrations: [] }))).toBe(true);
    expect(awaitingBind(machine({ state: 'approved', registrations: [registration({ bound: true })] }))).toBe(false);
    expect(awaitingBind(machine({ state: 'approved', registrations: [], actions: ['delete'] }))).toBe(false);
    expect(awaitingBind(machine({ state: 'ready', registrations: [] }))).toBe(false);
  });

  it('explains what a redeploy leads to, by profile kind', () => {
    expect(redeployNext({ kind: 'netboot' })).toContain('ready at once');
    expect(redeployNext({ kind: 'image' })).toContain('boot the machine into discovery');
    expect(redeployNext({ kind: 'image' })).toContain('bind that boot');
    expect(redeployNext(undefined)).toBe('Choose a profile.');
  });
});
