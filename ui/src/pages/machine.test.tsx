import { cleanup, waitFor } from '@testing-library/preact';
import { afterEach, describe, expect, it } from 'vitest';
import { fakeAPI, json, renderAt } from '../test/harness';
import { machine, sse, streamOf } from '../test/fixtures';
import { MachinePage } from './machine';

afterEach(cleanup);

describe('machine page', () => {
  it('moves to the machine’s canonical MAC, which only the API knows, when the address bar has another notation', async () => {
    const m = machine({ mac: '52:54:00:aa:00:09', state: 'inventoried' });
    const api = fakeAPI({
      'GET /api/v1/machines/{mac}': () => json(200, m),
      'GET /api/v1/machines/{mac}/boot-script': () => json(404, { status: 404, title: 'Not Found' }),
      'GET /api/v1/audit': () => json(200, { items: [] }),
      'GET /api/v1/events': ({ signal }) => {
        const s = streamOf();
        signal?.addEventListener('abort', () => s.fail(new DOMException('aborted', 'AbortError')));
        s.push(sse([{ event: 'ping', data: { time: '2026-01-01T00:00:00Z' } }]));
        return new Response(s.body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
      },
    });
    renderAt('/machines/5254.00AA.0009', [{ path: '/machines/:mac', component: MachinePage }], 'admin', true);
    await waitFor(() => expect(location.pathname).toBe(`/machines/${m.mac}`));
    await waitFor(() => expect(document.querySelector(`section.machine[data-mac="${m.mac}"]`)).not.toBeNull());
    // The page did not convert the notation itself: it asked the API.
    expect(api.calls.some((c) => c.path === '/api/v1/machines/5254.00AA.0009')).toBe(true);
  });
});
