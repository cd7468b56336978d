// The machine list as the dashboard shows it: one page at a time from the
// API, which filters, sorts, counts and searches (an appliance may hold
// 100,000 machines), kept current by events from the stream. Everything
// here is pure so the list's behaviour can be tested without a browser.
import type { Machine, MachineEvent, MachineList } from '../api/types';

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
// STATES is the list in order; the states themselves are the API's enum
// (generated from Go's package lifecycle into the OpenAPI document): tsc
// fails here when the two differ in either direction.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const statesAreTheAPIs: Same<State, Machine['state']> = true;
void statesAreTheAPIs;

/** PAGE_SIZE is how many machines one page of the list shows. */
export const PAGE_SIZE = 100;

export interface Filter {
  /** Only these states; empty means all. */
  states: ReadonlySet<string>;
  segment: string;
  cluster: string;
  /**
   * Text the API looks for, word by word, in the MAC (in any notation),
   * host name, IP, cluster, profile, segment, vendor, model, serial, CPU
   * model and the registrations' addresses.
   */
  q: string;
  /** Only machines with a MAC conflict (more than one active registration). */
  conflict?: boolean;
}

export const emptyFilter: Filter = { states: new Set(), segment: '', cluster: '', q: '' };

/** filtered says whether any filter is set. */
export function filtered(f: Filter): boolean {
  return f.states.size > 0 || !!f.segment || !!f.cluster || !!f.q.trim() || !!f.conflict;
}

export type SortKey = 'first_seen' | 'hostname' | 'mac' | 'state';

// Newest first for time; life-cycle order for state, so what needs
// attention (inventoried) comes before what is done.
const apiSort = { first_seen: '-first_seen', hostname: 'hostname', mac: 'mac', state: 'state' } as const;

/** ListQuery is the query of GET /api/v1/machines. */
export interface ListQuery {
  state?: string[];
  segment?: string;
  cluster?: string;
  q?: string;
  conflict?: boolean;
  sort: (typeof apiSort)[SortKey];
  limit: number;
  cursor?: string;
}

/** listQuery asks for the page after cursor ('' for the first) of f in sort's order. */
export function listQuery(f: Filter, sort: SortKey, cursor = '', limit = PAGE_SIZE): ListQuery {
  const q: ListQuery = { sort: apiSort[sort], limit };
  // One state parameter with commas: the API reads both forms.
  if (f.states.size > 0) q.state = [STATES.filter((s) => f.states.has(s)).join(',')];
  if (f.segment) q.segment = f.segment;
  if (f.cluster) q.cluster = f.cluster;
  if (f.q.trim()) q.q = f.q.trim();
  if (f.conflict) q.conflict = true;
  if (cursor) q.cursor = cursor;
  return q;
}

/**
 * countByState reads the API's counts, which count every state under every
 * filter but the state filter: what clicking a state would show.
 */
export function countByState(list: Pick<MachineList, 'counts'> | null): Record<State, number> & { all: number } {
  const c = Object.fromEntries(STATES.map((s) => [s, list?.counts?.[s] ?? 0])) as Record<State, number>;
  return { ...c, all: STATES.reduce((n, s) => n + c[s], 0) };
}

/**
 * applyEvent returns the page's machines after one event: a shown machine
 * is updated or removed at once. An update never goes back in time: an
 * event older (by revision) than the machine shown is ignored. A machine
 * that is not shown is left to the next load of the page, which alone
 * knows whether it belongs there; changed reports whether it might.
 */
export function applyEvent(items: readonly Machine[], ev: MachineEvent): { items: readonly Machine[]; changed: boolean } {
  const m = ev.machine;
  if (!m || typeof m.mac !== 'string') return { items, changed: false };
  const i = items.findIndex((x) => x.mac === m.mac);
  if (i < 0) return { items, changed: true };
  const cur = items[i]!;
  if (cur.revision > m.revision) return { items, changed: false };
  if (ev.type === 'deleted') return { items: items.filter((_, j) => j !== i), changed: true };
  const next = [...items];
  // Keep a summary the event may lack.
  next[i] = !m.summary ? { ...m, summary: cur.summary } : m;
  return { items: next, changed: true };
}

/** options lists the values for a filter menu: known ones, those on the page and the chosen one, sorted. */
export function options(known: readonly string[], items: readonly Machine[], field: 'segment' | 'cluster', chosen: string): string[] {
  const s = new Set(known);
  for (const m of items) if (m[field]) s.add(m[field]!);
  if (chosen) s.add(chosen);
  return [...s].sort();
}

/** pageRange describes which machines a page shows ("101–200 of 12,345"). */
export function pageRange(page: number, shown: number, total: number): string {
  if (total === 0) return 'no machine';
  const from = page * PAGE_SIZE + 1;
  const fmt = (n: number) => n.toLocaleString('en-US');
  if (shown === 0) return `none of ${fmt(total)}`;
  return `${fmt(from)}–${fmt(from + shown - 1)} of ${fmt(total)}`;
}

/**
 * Which actions the life cycle allows for a machine: the API lists them in
 * `actions` (from Go's package lifecycle, docs/lifecycle.md), so the
 * dashboard never restates the rules.
 */
export const ACTIONS = ['approve', 'reject', 'rediscover', 'retry', 'release', 'redeploy', 'bind', 'delete'] as const;
export type Action = (typeof ACTIONS)[number];

export function can(m: Pick<Machine, 'actions'>, action: Action): boolean {
  return (m.actions ?? []).includes(action);
}
