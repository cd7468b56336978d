// The machine list as the dashboard keeps it: loaded once from the API,
// then changed by events from the stream. Everything here is pure so the
// list's behaviour can be tested without a browser.
import type { Machine, MachineEvent } from '../api/types';

/** Every machine state in life-cycle order (docs/spec.md §1). */
export const STATES = [
  'discovered',
  'inventoried',
  'approved',
  'provisioning',
  'ready',
  'failed',
  'rejected',
] as const;
export type State = (typeof STATES)[number];

export type MachineMap = ReadonlyMap<string, Machine>;

/**
 * applyEvent returns the map after one event. An update never goes back in
 * time: an event older (by revision) than the machine already known is
 * ignored, so events that overlap a list reload do no harm.
 */
export function applyEvent(map: MachineMap, ev: MachineEvent): MachineMap {
  const m = ev.machine;
  if (!m || typeof m.mac !== 'string') return map;
  const cur = map.get(m.mac);
  const next = new Map(map);
  if (ev.type === 'deleted') {
    if (cur && cur.revision > m.revision) return map;
    next.delete(m.mac);
    return next;
  }
  if (cur && cur.revision > m.revision) return map;
  // The list view has no inventory; keep a summary the event may lack.
  next.set(m.mac, cur && !m.summary ? { ...m, summary: cur.summary } : m);
  return next;
}

/**
 * fromList builds the map from a fresh list and replays the events that
 * arrived while the list was loading.
 */
export function fromList(items: readonly Machine[], pending: readonly MachineEvent[] = []): MachineMap {
  let map: MachineMap = new Map(items.map((m) => [m.mac, m]));
  for (const ev of pending) map = applyEvent(map, ev);
  return map;
}

export interface Filter {
  /** Only these states; empty means all. */
  states: ReadonlySet<string>;
  segment: string;
  cluster: string;
  /**
   * Case-insensitive text in MAC, host name, IP, cluster, profile,
   * segment, vendor, model, serial and the registrations' addresses.
   */
  q: string;
  /** Only machines with a MAC conflict (more than one active registration). */
  conflict?: boolean;
}

export const emptyFilter: Filter = { states: new Set(), segment: '', cluster: '', q: '' };

/** searchable is every text a search can match, lower-cased. */
function searchable(m: Machine): string {
  const s = m.summary;
  const regIPs = (m.registrations ?? []).map((r) => r.ip);
  return [m.mac, m.hostname, m.ip, m.cluster, m.profile, m.segment, s?.vendor, s?.model, s?.serial, s?.cpu_model, ...regIPs]
    .filter(Boolean)
    .join('\n')
    .toLowerCase();
}

/** matches reports whether m passes every part of f except the states. */
function matchesRest(m: Machine, f: Filter, q: string): boolean {
  if (f.segment && m.segment !== f.segment) return false;
  if (f.cluster && m.cluster !== f.cluster) return false;
  if (f.conflict && !m.mac_conflict) return false;
  if (!q) return true;
  // A MAC typed with dashes or without separators still finds the machine.
  const text = searchable(m);
  return q.split(/\s+/).every((w) => text.includes(w) || text.includes(normalizeMAC(w)));
}

function normalizeMAC(w: string): string {
  const hex = w.replace(/[-:.]/g, '');
  if (!/^[0-9a-f]{4,12}$/.test(hex) || hex.length % 2) return w;
  return hex.match(/../g)!.join(':');
}

/** filterMachines returns the machines that pass f, sorted. */
export function filterMachines(all: Iterable<Machine>, f: Filter, sort: SortKey = 'first_seen'): Machine[] {
  const q = f.q.trim().toLowerCase();
  const out: Machine[] = [];
  for (const m of all) {
    if (f.states.size > 0 && !f.states.has(m.state)) continue;
    if (!matchesRest(m, f, q)) continue;
    out.push(m);
  }
  return out.sort(sorters[sort]);
}

/**
 * countByState counts the machines per state under every filter except the
 * state filter, so the counts say what clicking a state would show.
 */
export function countByState(all: Iterable<Machine>, f: Filter = emptyFilter): Record<State, number> & { all: number } {
  const q = f.q.trim().toLowerCase();
  const c = Object.fromEntries(STATES.map((s) => [s, 0])) as Record<State, number>;
  let n = 0;
  for (const m of all) {
    if (!matchesRest(m, f, q)) continue;
    n++;
    if (m.state in c) c[m.state as State]++;
  }
  return { ...c, all: n };
}

export type SortKey = 'first_seen' | 'hostname' | 'mac' | 'state';

const stateIndex = (s: string) => STATES.indexOf(s as State);

// Newest first for time; life-cycle order for state, so what needs
// attention (inventoried) comes before what is done.
const sorters: Record<SortKey, (a: Machine, b: Machine) => number> = {
  first_seen: (a, b) => b.first_seen.localeCompare(a.first_seen) || a.mac.localeCompare(b.mac),
  hostname: (a, b) => a.hostname.localeCompare(b.hostname) || a.mac.localeCompare(b.mac),
  mac: (a, b) => a.mac.localeCompare(b.mac),
  state: (a, b) => stateIndex(a.state) - stateIndex(b.state) || a.mac.localeCompare(b.mac),
};

/** distinct lists the non-empty values of one field, sorted, for filter menus. */
export function distinct(all: Iterable<Machine>, field: 'segment' | 'cluster'): string[] {
  const s = new Set<string>();
  for (const m of all) {
    const v = m[field];
    if (v) s.add(v);
  }
  return [...s].sort();
}

/**
 * Which actions the life cycle allows for a machine: the API lists them in
 * `actions` (from Go's package lifecycle, docs/lifecycle.md), so the
 * dashboard never restates the rules.
 */
export type Action = 'approve' | 'reject' | 'rediscover' | 'retry' | 'release' | 'redeploy' | 'bind' | 'delete';

export function can(m: Pick<Machine, 'actions'>, action: Action): boolean {
  return (m.actions ?? []).includes(action);
}
