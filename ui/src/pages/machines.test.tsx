import { cleanup, fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { afterEach, describe, expect, it } from 'vitest';
import { MachinesPage } from './machines';
import { fakeAPI, json, renderAt } from '../test/harness';
import { machine, registration, sse, streamOf } from '../test/fixtures';

const page = [{ path: '/', component: MachinesPage }];
const count = (s: string) => document.querySelector(`[data-count="${s}"]`)?.textContent;
const rows = () => [...document.querySelectorAll('tbody tr[data-mac]')].map((r) => r.getAttribute('data-mac'));

afterEach(cleanup);

function live(initial: ReturnType<typeof machine>[]) {
  const streams: ReturnType<typeof streamOf>[] = [];
  let lists = 0;
  const api = fakeAPI({
    'GET /api/v1/machines': () => {
      lists++;
      return json(200, { items: initial, total: initial.length, counts: {} });
    },
    'GET /api/v1/events': ({ auth, signal }) => {
      expect(auth).toBe('Bearer tok');
      const s = streamOf();
      signal?.addEventListener('abort', () => s.fail(new DOMException('aborted', 'AbortError')));
      streams.push(s);
      s.push(sse([{ event: 'ping', data: { time: '2026-01-01T00:00:00Z' } }]));
      return new Response(s.body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
    },
  });
  return { api, streams, lists: () => lists };
}

describe('machine list', () => {
  const a = machine({ mac: '52:54:00:aa:00:01', state: 'inventoried', hostname: 'discovered-aa0001', segment: 'lab' });
  const b = machine({ mac: '52:54:00:aa:00:02', state: 'ready', hostname: 'node-2', segment: 'rack', cluster: 'c1', revision: 4 });

  it('shows machines, then applies events from the stream without reloading', async () => {
    const l = live([a, b]);
    renderAt('/', page, 'admin', true);
    await waitFor(() => expect(rows()).toHaveLength(2));
    expect(count('all')).toBe('2');
    expect(count('inventoried')).toBe('1');

    const c = machine({ mac: '52:54:00:aa:00:03', state: 'discovered', hostname: 'discovered-aa0003' });
    l.streams[0]!.push(sse([{ event: 'machine', data: { type: 'created', machine: c } }]));
    await waitFor(() => expect(rows()).toContain(c.mac));
    expect(count('discovered')).toBe('1');

    // The new machine reports and is approved; progress shows live.
    l.streams[0]!.push(
      sse([
        { event: 'machine', data: { type: 'updated', machine: { ...c, state: 'provisioning', progress: 42, revision: 3 } } },
        { event: 'machine', data: { type: 'deleted', machine: a } },
      ]),
    );
    await waitFor(() => expect(document.querySelector(`tr[data-mac="${c.mac}"]`)?.getAttribute('data-state')).toBe('provisioning'));
    const bar = within(document.querySelector(`tr[data-mac="${c.mac}"]`) as HTMLElement).getByRole('progressbar') as HTMLProgressElement;
    expect(bar.value).toBe(42);
    await waitFor(() => expect(rows()).not.toContain(a.mac));
    expect(count('all')).toBe('2');
    expect(l.lists()).toBe(1);

    // A resync event reloads the list.
    l.streams[0]!.push(sse([{ event: 'resync', data: { reason: 'missed' } }]));
    await waitFor(() => expect(l.lists()).toBe(2));
  });

  it('reconnects when the stream drops and reloads what it missed', async () => {
    const l = live([a]);
    renderAt('/', page, 'admin', true);
    await waitFor(() => expect(rows()).toHaveLength(1));
    l.streams[0]!.close();
    await waitFor(() => expect(l.streams).toHaveLength(2), { timeout: 3000 });
    await waitFor(() => expect(l.lists()).toBe(2));
  });

  it('filters by state, segment and text, and counts under the other filters', async () => {
    live([a, b, machine({ mac: '52:54:00:aa:00:05', state: 'failed', segment: 'lab', message: 'checksum mismatch' })]);
    renderAt('/', page, 'admin', true);
    await waitFor(() => expect(rows()).toHaveLength(3));
    fireEvent.click(screen.getByRole('button', { name: /^inventoried/ }));
    expect(rows()).toEqual([a.mac]);
    expect(screen.getByRole('button', { name: /^inventoried/ }).getAttribute('aria-pressed')).toBe('true');
    fireEvent.click(screen.getByRole('button', { name: /^All/ }));
    fireEvent.change(screen.getByLabelText('Segment'), { target: { value: 'lab' } });
    expect(rows().sort()).toEqual([a.mac, '52:54:00:aa:00:05']);
    expect(count('ready')).toBe('0');
    fireEvent.input(screen.getByLabelText('Search'), { target: { value: 'AA-00-05' } });
    expect(rows()).toEqual(['52:54:00:aa:00:05']);
    // The failure shows its reason and a retry button.
    expect(screen.getByText('checksum mismatch')).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Retry' })).toBeTruthy();
  });

  it('gives admins approve links and bulk selection, viewers neither', async () => {
    live([a, b]);
    const r = renderAt('/', page, 'admin', true);
    await waitFor(() => expect(rows()).toHaveLength(2));
    expect(document.querySelector('[data-action="approve"]')?.getAttribute('href')).toBe(`/machines/${a.mac}/approve`);
    fireEvent.click(screen.getByLabelText(`Select ${a.hostname}`));
    expect(screen.getByRole('button', { name: 'Reject selected…' })).toBeTruthy();
    r.unmount();

    live([a, b]);
    renderAt('/', page, 'viewer', true);
    await waitFor(() => expect(rows()).toHaveLength(2));
    expect(document.querySelector('[data-action="approve"]')).toBeNull();
    expect(document.querySelectorAll('input[type="checkbox"]')).toHaveLength(0);
    expect(screen.getByText('awaiting approval')).toBeTruthy();
  });

  it('marks a MAC conflict in its row and above the list, and filters to the conflicts', async () => {
    const c = machine({
      mac: '52:54:00:aa:00:07', hostname: 'discovered-aa0007', mac_conflict: true,
      registrations: [registration({ ip: '10.77.0.5' }), registration({ ip: '10.77.0.66' })],
    });
    const l = live([a, b, c]);
    renderAt('/', page, 'admin', true);
    await waitFor(() => expect(rows()).toHaveLength(3));
    const badge = document.querySelector(`tr[data-mac="${c.mac}"] .badge-conflict`);
    expect(badge?.textContent).toContain('MAC conflict');
    expect(badge?.getAttribute('title')).toContain('from 10.77.0.5, 10.77.0.66');
    expect(document.querySelector(`tr[data-mac="${c.mac}"]`)?.getAttribute('data-conflict')).toBe('true');
    expect(document.querySelectorAll('.badge-conflict')).toHaveLength(1);
    expect(screen.getByRole('alert').textContent).toContain('1 machine has a MAC conflict');

    fireEvent.click(screen.getByRole('button', { name: 'Show only these' }));
    expect(rows()).toEqual([c.mac]);
    expect(count('all')).toBe('1');

    // The spoofer's registration is ended: the event clears the marker.
    l.streams[0]!.push(sse([{ event: 'machine', data: { type: 'updated', machine: { ...c, mac_conflict: false, registrations: c.registrations!.slice(0, 1), revision: 2 } } }]));
    await waitFor(() => expect(document.querySelector('.badge-conflict')).toBeNull());
    expect(rows()).toEqual([]);
    fireEvent.click(screen.getByRole('button', { name: 'Show every machine' }));
    expect(rows()).toHaveLength(3);
    expect(screen.queryByRole('alert')).toBeNull();
  });
});
