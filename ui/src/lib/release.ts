// What follows an install: the installed system's first-boot report
// (ready, the deploy time, its SSH host keys) and what a release or a
// redeploy leaves pending. Pure, so the pages' wording can be tested
// without a browser; the life cycle's rules stay in the API's `actions`.
import type { Machine, Profile, Registration } from '../api/types';
import { duration } from './progress';

export type FirstBoot = NonNullable<Machine['first_boot']>;

/**
 * awaitingFirstBoot: the image is written and the machine boots its disk;
 * it is ready when the installed system reports.
 */
export function awaitingFirstBoot(m: Pick<Machine, 'state' | 'installed'>): boolean {
  return m.state === 'provisioning' && !!m.installed;
}

/**
 * currentFirstBoot is the report of the system the machine runs now: a
 * ready machine's, made after its approval. An older one describes a
 * system that was replaced (a later approval) or is being wiped.
 */
export function currentFirstBoot(m: Pick<Machine, 'state' | 'first_boot' | 'approval'>): FirstBoot | undefined {
  const fb = m.first_boot;
  if (!fb || m.state !== 'ready') return undefined;
  const at = Date.parse(fb.at);
  const approved = m.approval ? Date.parse(m.approval.approved_at) : NaN;
  if (!Number.isNaN(at) && !Number.isNaN(approved) && at < approved) return undefined;
  return fb;
}

/** deployTime is approval to ready, "4 min 12 s"; '' when not ready. */
export function deployTime(m: Pick<Machine, 'state' | 'deploy_seconds'>): string {
  const s = m.deploy_seconds;
  if (m.state !== 'ready' || s == null || !Number.isFinite(s) || s < 0) return '';
  return duration(s);
}

/** address is where the machine is reached: its static address, else the last one seen. */
function address(m: Pick<Machine, 'ip' | 'approval'>): string {
  const n = m.approval?.network;
  if (n?.mode === 'static' && n.address) return n.address.split('/')[0] ?? '';
  return m.ip ?? '';
}

/**
 * knownHosts are the current first-boot report's SSH host keys as
 * known_hosts lines: "name,address key".
 */
export function knownHosts(m: Pick<Machine, 'state' | 'first_boot' | 'approval' | 'hostname' | 'ip'>): string[] {
  const fb = currentFirstBoot(m);
  if (!fb?.ssh_host_keys?.length) return [];
  const host = [fb.hostname || m.hostname, address(m)].filter(Boolean).join(',');
  return fb.ssh_host_keys.map((k) => `${host} ${k.trim()}`.trim());
}

export interface PendingWipe {
  full: boolean;
  /** The registrations whose agent has wiped: only these can be approved. */
  wiped: Registration[];
}

/** pendingWipe is a released machine's wipe, until it is approved again. */
export function pendingWipe(m: Pick<Machine, 'wipe' | 'registrations'>): PendingWipe | undefined {
  if (!m.wipe) return undefined;
  return { full: !!m.wipe.full, wiped: (m.registrations ?? []).filter((r) => !!r.wiped_at) };
}

/** wipeScope says what a wipe overwrites; secure: the drives' own erase. */
export function wipeScope(full: boolean, secure = false): string {
  if (secure) return "every fixed disk with the drive's own secure erase (every byte overwritten on a disk that has none)";
  return full
    ? 'every byte of every fixed disk'
    : 'the partition tables, signatures and the first and last MiB of every fixed disk';
}

/**
 * awaitingBind: an approved machine whose install no boot has taken over
 * (it was redeployed): someone must boot it into discovery and bind that
 * boot. Shown only where the API offers bind.
 */
export function awaitingBind(m: Pick<Machine, 'state' | 'registrations' | 'actions'>): boolean {
  return m.state === 'approved' && (m.actions ?? []).includes('bind') && !(m.registrations ?? []).some((r) => r.bound);
}

/** redeployNext explains what a redeploy with profile p leads to. */
export function redeployNext(p: Pick<Profile, 'kind'> | undefined): string {
  if (!p) return 'Choose a profile.';
  if (p.kind === 'netboot')
    return 'A netboot profile is ready at once: the machine’s next PXE boot gets the production script.';
  return (
    'Next, boot the machine into discovery (power-cycle it) and bind that boot with the token its console shows. ' +
    'Its agent then writes the image; the machine is ready when the installed system reports its first boot.'
  );
}
