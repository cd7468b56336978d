// Test data shaped like the API's answers.
import type { Machine, MachineEvent, Registration } from '../api/types';
import lifecycle from '../lib/lifecycle.json';

let n = 0;
export function machine(p: Partial<Machine> = {}): Machine {
  n++;
  const mac = p.mac ?? `52:54:00:00:00:${n.toString(16).padStart(2, '0')}`;
  return {
    mac,
    state: 'inventoried',
    hostname: `discovered-${mac.replace(/:/g, '').slice(-6)}`,
    temporary: true,
    first_seen: new Date(Date.UTC(2026, 0, 1, 0, n)).toISOString(),
    last_seen: new Date(Date.UTC(2026, 0, 1, 1, n)).toISOString(),
    progress: 0,
    revision: 1,
    registrations: [],
    mac_conflict: false,
    summary: { vendor: 'QEMU', model: 'Standard PC (Q35 + ICH9, 2009)', cores: 2, threads: 4, memory_bytes: 2 * 2 ** 30, disks: 1, disk_bytes: 8 * 2 ** 30 },
    ...p,
    // The API lists the actions its life cycle allows in the state.
    actions: p.actions ?? (lifecycle as Record<string, string[]>)[p.state ?? 'inventoried'],
  } as Machine;
}

let r = 0;
/** registration is one live boot session of a machine, as the API shows it. */
export function registration(p: Partial<Registration> = {}): Registration {
  r++;
  const id = p.id ?? `${r.toString(36).padStart(4, '0')}q3Zq0Jm7S0nM2s8yYl8yQ0b9vHq6S3hC1xJr2mR9`;
  return {
    id,
    ip: `10.77.0.${100 + r}`,
    registered_at: new Date(Date.UTC(2026, 0, 1, 0, r)).toISOString(),
    last_seen: new Date(Date.UTC(2026, 0, 1, 1, r)).toISOString(),
    active: true,
    bound: false,
    token: { expires_at: new Date(Date.UTC(2099, 0, 1)).toISOString(), expired: false, failures: 0, locked: false },
    ...p,
  };
}

export function event(type: MachineEvent['type'], m: Machine): MachineEvent {
  return { type, machine: m };
}

/** sse formats events as a server would send them. */
export function sse(events: { event?: string; data: unknown; id?: string }[]): string {
  return events
    .map((e) => `${e.event ? `event: ${e.event}\n` : ''}${e.id ? `id: ${e.id}\n` : ''}data: ${JSON.stringify(e.data)}\n\n`)
    .join('');
}

/** streamOf returns a controllable body stream and functions to feed it. */
export function streamOf() {
  let ctl!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({ start: (c) => { ctl = c; } });
  const enc = new TextEncoder();
  return {
    body,
    push: (s: string) => ctl.enqueue(enc.encode(s)),
    pushBytes: (b: Uint8Array) => ctl.enqueue(b),
    close: () => ctl.close(),
    fail: (e: Error) => ctl.error(e),
  };
}
