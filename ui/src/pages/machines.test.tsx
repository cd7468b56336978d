import { cleanup, fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { afterEach, describe, expect, it } from 'vitest';
import { MachinesPage } from './machines';
import { fakeAPI, json, renderAt } from '../test/harness';
import { machine, registration, sse, streamOf } from '../test/fixtures';
import { STATES } from '../lib/machines';
import type { Machine } from '../api/types';

const page = [{ path: '/', component: MachinesPage }];
const count = (s: string) => document.querySelector(`[data-count="${s}"]`)?.textContent;
const rows = () => [...document.querySelectorAll('tbody tr[data-mac]')].map((r) => r.getAttribute('data-mac'));

afterEach(cleanup);

/**
 * appliance answers the machine list as the API does — filters, counts
 * under the other filters, order, pages by cursor — over machines the test
 * may change, and records every query.
 */
function appliance(initial: Machine[]) {
  const machines = [...initial];
  const streams: ReturnType<typeof streamOf>[] = [];
  const queries: URLSearchParams[] = [];
  const api = fakeAPI({
    'GET /api/v1/machines': ({ query }) => {
      queries.push(query);
      const states = (query.get('state') ?? '').split(',').filter(Boolean);
      const words = (query.get('q') ?? '').toLowerCase().split(/\s+/).filter(Boolean);
      const rest = machines.filter((m) =>
        (!query.get('segment') || m.segment === query.get('segment')) &&
        (!query.get('cluster') || m.cluster === query.get('cluster')) &&
        (query.get('conflict') !== 'true' || m.mac_conflict) &&
        words.every((w) => [m.mac, m.hostname, m.segment, m.summary?.vendor].join('\n').toLowerCase().includes(w)));
      const counts = Object.fromEntries(STATES.map((s) => [s, rest.filter((m) => m.state === s).length]));
      const hits = rest.filter((m) => states.length === 0 || states.includes(m.state));
      const sort = query.get('sort') ?? 'mac';
      hits.sort(sort === '-first_seen' ? (a, b) => b.first_seen.localeCompare(a.first_seen) : (a, b) => a.mac.localeCompare(b.mac));
      const from = Number(query.get('cursor') ?? 0);
      const limit = Number(query.get('limit') ?? 100);
      const items = hits.slice(from, from + limit);
      return json(200, {
        items, total: hits.length, counts, conflicts: machines.filter((m) => m.mac_conflict).length,
        ...(from + limit < hits.length ? { next_cursor: String(from + limit) } : {}),
      });
    },
    'GET /api/v1/segments': () => json(200, [{ name: 'lab', subnet: '10.77.0.0/24', mode: 'dhcp', discovery: true }]),
    'GET /api/v1/clusters': () => json(200, [{ name: 'c1', created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z' }]),
    'GET /api/v1/events': ({ signal }) => {
      const s = streamOf();
      signal?.addEventListener('abort', () => s.fail(new DOMException('aborted', 'AbortError')));
      streams.push(s);
      s.push(sse([{ event: 'ping', data: { time: '2026-01-01T00:00:00Z' } }]));
      return new Response(s.body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
    },
  });
  return { api, machines, streams, queries, lists: () => queries.length, last: () => queries[queries.length - 1]! };
}

describe('machine list', () => {
  const a = machine({ mac: '52:54:00:aa:00:01', state: 'inventoried', hostname: 'discovered-aa0001', segment: 'lab' });
  const b = machine({ mac: '52:54:00:aa:00:02', state: 'ready', hostname: 'node-2', segment: 'rack', cluster: 'c1', revision: 4 });

  it('shows the newest first, updates a row from the stream at once and loads the page again soon after', async () => {
    const l = appliance([a, b]);
    renderAt('/', page, 'admin', true);
    await waitFor(() => expect(rows()).toEqual([b.mac, a.mac]));
    expect(l.last().get('sort')).toBe('-first_seen');
    expect(count('all')).toBe('2');
    expect(count('inventoried')).toBe('1');
    const before = l.lists();

    // The shown machine is approved and provisions: its row changes at once.
    const now: Machine = { ...a, state: 'provisioning', progress: 42, revision: 3 };
    l.machines[0] = now;
    const c = machine({ mac: '52:54:00:aa:00:03', state: 'discovered', hostname: 'discovered-aa0003' });
    l.machines.push(c);
    l.streams[0]!.push(sse([
      { event: 'machine', data: { type: 'updated', machine: now } },
      { event: 'machine', data: { type: 'created', machine: c } },
    ]));
    await waitFor(() => expect(document.querySelector(`tr[data-mac="${a.mac}"]`)?.getAttribute('data-state')).toBe('provisioning'));
    const bar = within(document.querySelector(`tr[data-mac="${a.mac}"]`) as HTMLElement).getByRole('progressbar') as HTMLProgressElement;
    expect(bar.value).toBe(42);
    // The new machine belongs on the page: the appliance says so on the next load.
    await waitFor(() => expect(rows()).toContain(c.mac));
    expect(count('discovered')).toBe('1');
    expect(l.lists()).toBe(before + 1); // two events, one load

    // A resync event loads the list again.
    l.streams[0]!.push(sse([{ event: 'resync', data: { reason: 'missed' } }]));
    await waitFor(() => expect(l.lists()).toBe(before + 2));
  });

  it('loads again when the stream reconnects', async () => {
    const l = appliance([a]);
    renderAt('/', page, 'admin', true);
    await waitFor(() => expect(rows()).toHaveLength(1));
    const before = l.lists();
    l.streams[0]!.close();
    await waitFor(() => expect(l.streams).toHaveLength(2), { timeout: 3000 });
    await waitFor(() => expect(l.lists()).toBeGreaterThan(before));
  });

  it('asks the appliance to filter by state, segment and text, and shows its counts under the other filters', async () => {
    const f = machine({ mac: '52:54:00:aa:00:05', state: 'failed', segment: 'lab', message: 'checksum mismatch' });
    const l = appliance([a, b, f]);
    renderAt('/', page, 'admin', true);
    await waitFor(() => expect(rows()).toHaveLength(3));
    fireEvent.click(screen.getByRole('button', { name: /^inventoried/ }));
    await waitFor(() => expect(rows()).toEqual([a.mac]));
    expect(l.last().get('state')).toBe('inventoried');
    expect(screen.getByRole('button', { name: /^inventoried/ }).getAttribute('aria-pressed')).toBe('true');
    fireEvent.click(screen.getByRole('button', { name: /^failed/ }));
    await waitFor(() => expect(l.last().get('state')).toBe('inventoried,failed'));
    fireEvent.click(screen.getByRole('button', { name: /^All/ }));
    await waitFor(() => expect(rows()).toHaveLength(3));
    // The segments come from the appliance's configuration.
    await waitFor(() => expect(within(screen.getByLabelText('Segment')).getByRole('option', { name: 'lab' })).toBeTruthy());
    fireEvent.change(screen.getByLabelText('Segment'), { target: { value: 'lab' } });
    await waitFor(() => expect(rows().sort()).toEqual([a.mac, f.mac]));
    expect(l.last().get('segment')).toBe('lab');
    expect(count('ready')).toBe('0');
    expect(count('all')).toBe('2');
    fireEvent.input(screen.getByLabelText('Search'), { target: { value: 'AA:00:05' } });
    await waitFor(() => expect(rows()).toEqual([f.mac]));
    expect(l.last().get('q')).toBe('AA:00:05');
    // The failure shows its reason and a retry button.
    expect(screen.getByText('checksum mismatch')).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Retry' })).toBeTruthy();
    fireEvent.input(screen.getByLabelText('Search'), { target: { value: 'nothing-like-it' } });
    await waitFor(() => expect(screen.getByText('No machine matches these filters.')).toBeTruthy());
  });

  it('pages through many machines with the cursor', async () => {
    const many = Array.from({ length: 250 }, (_, i) => machine({ mac: `52:54:00:bb:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}` }));
    const l = appliance(many);
    renderAt('/', page, 'viewer', true);
    await waitFor(() => expect(rows()).toHaveLength(100));
    expect(l.last().get('limit')).toBe('100');
    expect(document.querySelector('.page-head')?.textContent).toContain('1–100 of 250 machines');
    const first = rows()[0];
    fireEvent.click(screen.getByRole('button', { name: 'Next page' }));
    await waitFor(() => expect(screen.getAllByText('101–200 of 250').length).toBeGreaterThan(0));
    expect(l.last().get('cursor')).toBe('100');
    expect(rows()).not.toContain(first);
    fireEvent.click(screen.getByRole('button', { name: 'Next page' }));
    await waitFor(() => expect(rows()).toHaveLength(50));
    expect((screen.getByRole('button', { name: 'Next page' }) as HTMLButtonElement).disabled).toBe(true);
    fireEvent.click(screen.getByRole('button', { name: 'Previous page' }));
    await waitFor(() => expect(rows()).toHaveLength(100));
    expect(l.last().get('cursor')).toBe('100');
    // Another order starts again at the first page.
    fireEvent.change(screen.getByLabelText('Sort by'), { target: { value: 'mac' } });
    await waitFor(() => expect(rows()[0]).toBe(many[0]!.mac));
    expect(l.last().get('cursor')).toBeNull();
    expect(l.last().get('sort')).toBe('mac');
  });

  it('gives admins approve links and bulk selection, viewers neither', async () => {
    appliance([a, b]);
    const r = renderAt('/', page, 'admin', true);
    await waitFor(() => expect(rows()).toHaveLength(2));
    expect(document.querySelector('[data-action="approve"]')?.getAttribute('href')).toBe(`/machines/${a.mac}/approve`);
    fireEvent.click(screen.getByLabelText(`Select ${a.hostname}`));
    expect(screen.getByRole('button', { name: 'Reject selected…' })).toBeTruthy();
    r.unmount();

    appliance([a, b]);
    renderAt('/', page, 'viewer', true);
    await waitFor(() => expect(rows()).toHaveLength(2));
    expect(document.querySelector('[data-action="approve"]')).toBeNull();
    expect(document.querySelectorAll('input[type="checkbox"]')).toHaveLength(0);
    expect(screen.getByText('awaiting approval')).toBeTruthy();
  });

  it('offers approve and retry only where the API lists them in actions, whatever the state', async () => {
    // The life cycle's rules are the API's (Go package lifecycle): a
    // machine whose actions lack approve or retry gets no such button.
    const held = machine({ mac: '52:54:00:aa:00:07', state: 'inventoried', actions: ['delete'] });
    const stuck = machine({ mac: '52:54:00:aa:00:08', state: 'failed', message: 'checksum mismatch', actions: ['delete'] });
    appliance([held, stuck]);
    renderAt('/', page, 'admin', true);
    await waitFor(() => expect(rows()).toHaveLength(2));
    expect(document.querySelector('[data-action="approve"]')).toBeNull();
    expect(screen.getByText('awaiting approval')).toBeTruthy();
    expect(screen.getByText('checksum mismatch')).toBeTruthy();
    expect(screen.queryByRole('button', { name: 'Retry' })).toBeNull();
  });

  it('marks a MAC conflict in its row and above the list, and asks for the conflicts only', async () => {
    const c = machine({
      mac: '52:54:00:aa:00:07', hostname: 'discovered-aa0007', mac_conflict: true,
      registrations: [registration({ ip: '10.77.0.5' }), registration({ ip: '10.77.0.66' })],
    });
    const l = appliance([a, b, c]);
    renderAt('/', page, 'admin', true);
    await waitFor(() => expect(rows()).toHaveLength(3));
    const badge = document.querySelector(`tr[data-mac="${c.mac}"] .badge-conflict`);
    expect(badge?.textContent).toContain('MAC conflict');
    expect(badge?.getAttribute('title')).toContain('from 10.77.0.5, 10.77.0.66');
    expect(document.querySelector(`tr[data-mac="${c.mac}"]`)?.getAttribute('data-conflict')).toBe('true');
    expect(document.querySelectorAll('.badge-conflict')).toHaveLength(1);
    expect(screen.getByRole('alert').textContent).toContain('1 machine has a MAC conflict');

    fireEvent.click(screen.getByRole('button', { name: 'Show only these' }));
    await waitFor(() => expect(rows()).toEqual([c.mac]));
    expect(l.last().get('conflict')).toBe('true');
    expect(count('all')).toBe('1');

    // The spoofer's registration is ended: the event clears the marker, and the next load the list.
    const ended = { ...c, mac_conflict: false, registrations: c.registrations!.slice(0, 1), revision: 2 };
    l.machines[2] = ended;
    l.streams[0]!.push(sse([{ event: 'machine', data: { type: 'updated', machine: ended } }]));
    await waitFor(() => expect(document.querySelector('.badge-conflict')).toBeNull());
    await waitFor(() => expect(rows()).toEqual([]));
    fireEvent.click(screen.getByRole('button', { name: 'Show every machine' }));
    await waitFor(() => expect(rows()).toHaveLength(3));
    expect(screen.queryByRole('alert')).toBeNull();
  });
});
