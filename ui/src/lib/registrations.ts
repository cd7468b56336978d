// A machine's registrations (discovery boot sessions) as the dashboard
// shows them. Two active registrations for one MAC are a MAC conflict:
// another host may be answering for the machine's MAC, and only the token
// on the console of the machine in front of the administrator tells which
// registration is the genuine one. Everything here is pure.
import type { Machine, Registration, Summary, TokenStatus } from '../api/types';
import { bytes, relTime, absTime } from './format';

/**
 * shortID is how a registration is named on screen: the first eight
 * characters of its key ID, as the audit log writes it.
 */
export function shortID(id: string): string {
  return id.slice(0, 8);
}

/** registrationsOf is the machine's live registrations, oldest first. */
export function registrationsOf(m: Pick<Machine, 'registrations'>): Registration[] {
  return m.registrations ?? [];
}

/** conflicts counts the machines with a MAC conflict. */
export function conflicts(all: Iterable<Pick<Machine, 'mac_conflict'>>): number {
  let n = 0;
  for (const m of all) if (m.mac_conflict) n++;
  return n;
}

/** activeIPs lists the distinct addresses of the active registrations. */
export function activeIPs(m: Pick<Machine, 'registrations'>): string[] {
  const ips = registrationsOf(m)
    .filter((r) => r.active)
    .map((r) => r.ip || 'unknown address');
  return [...new Set(ips)];
}

export type TokenState = 'valid' | 'expired' | 'locked';

/**
 * tokenState says whether a registration's console token can still be
 * used to approve it, and how to say so.
 */
export function tokenState(t: TokenStatus, now: number = Date.now()): { state: TokenState; text: string } {
  if (t.locked) return { state: 'locked', text: `locked after ${t.failures} wrong attempts` };
  // The API computed "expired" when it answered; the page may be older.
  if (t.expired || Date.parse(t.expires_at) <= now) return { state: 'expired', text: `expired ${relTime(t.expires_at, now)}` };
  const wrong = t.failures ? ` (${t.failures} wrong ${t.failures === 1 ? 'attempt' : 'attempts'})` : '';
  return { state: 'valid', text: `valid until ${absTime(t.expires_at)}${wrong}` };
}

/**
 * summaryText is what a registration says it is, in one line: vendor,
 * model, serial, CPU, memory, disks. '' when it reported nothing.
 */
export function summaryText(s: Summary | undefined): string {
  if (!s) return '';
  const parts: string[] = [];
  const name = [s.vendor, s.model].filter(Boolean).join(' ');
  if (name) parts.push(name);
  if (s.serial) parts.push(`serial ${s.serial}`);
  if (s.cores) parts.push(`${s.cores} cores`);
  if (s.memory_bytes) parts.push(bytes(s.memory_bytes));
  if (s.disks) parts.push(`${s.disks} ${s.disks === 1 ? 'disk' : 'disks'}, ${bytes(s.disk_bytes)}`);
  return parts.join(' · ');
}

/**
 * sameHardware tells whether two summaries describe the same hardware as
 * far as a summary can: a spoofer rarely copies serial, memory and disks.
 */
export function sameHardware(a: Summary | undefined, b: Summary | undefined): boolean {
  if (!a || !b) return a === b;
  const keys: (keyof Summary)[] = ['vendor', 'model', 'serial', 'cores', 'threads', 'memory_bytes', 'disks', 'disk_bytes', 'nics', 'gpus'];
  return keys.every((k) => (a[k] ?? '') === (b[k] ?? ''));
}

/**
 * matchedRegistration is the registration a verified token belongs to,
 * and whether the hardware the machine record shows (its latest report)
 * differs from what that registration reported: approval uses the
 * matched registration's inventory, so the administrator must review that.
 */
export function matchedRegistration(
  m: Pick<Machine, 'registrations' | 'summary'>,
  id: string | undefined,
): { reg: Registration; differs: boolean } | undefined {
  if (!id) return undefined;
  const reg = registrationsOf(m).find((r) => r.id === id);
  if (!reg) return undefined;
  return { reg, differs: reg.summary !== undefined && !sameHardware(reg.summary, m.summary) };
}

/**
 * endWarning is what ending a registration does, for the confirmation:
 * ending the registration approval bound strands the machine.
 */
export function endWarning(m: Pick<Machine, 'hostname'>, r: Registration): string {
  const what = `registration ${shortID(r.id)}${r.ip ? ` from ${r.ip}` : ''}`;
  if (r.bound) {
    return `End ${what}? Approval bound ${m.hostname} to it: after it ends, no agent may install the machine; rediscover it then.`;
  }
  return `End ${what}? Its agent can make no further call. If it was the genuine machine, it reboots into discovery and registers again.`;
}
