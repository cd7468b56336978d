import { cleanup, waitFor } from '@testing-library/preact';
import { afterEach, describe, expect, it } from 'vitest';
import { MachinesPage } from './machines';
import { fakeAPI, json, renderAt } from '../test/harness';
import { machine, sse, streamOf } from '../test/fixtures';

const MiB = 2 ** 20;
const page = [{ path: '/', component: MachinesPage }];
const line = (mac: string) => document.querySelector(`tr[data-mac="${mac}"] .download`)?.textContent ?? '';

afterEach(cleanup);

describe('image download progress', () => {
  it('shows bytes, rate and time left in the list, live from the event stream, and how far a failed one came', async () => {
    const at = new Date().toISOString();
    const writing = machine({
      mac: '52:54:00:bb:00:01', state: 'provisioning', progress: 42, message: 'writing image to /dev/sda',
      progress_detail: { bytes_done: 420 * MiB, bytes_total: 1000 * MiB, rate_bps: 50 * MiB, eta_seconds: 12, at },
    });
    const failed = machine({
      mac: '52:54:00:bb:00:02', state: 'failed', progress: 30, message: 'download image: connection reset',
      progress_detail: { bytes_done: 300 * MiB, bytes_total: 1000 * MiB, rate_bps: 0, eta_seconds: 0, at },
    });
    const other = machine({ mac: '52:54:00:bb:00:03', state: 'provisioning', progress: 5 });
    const streams: ReturnType<typeof streamOf>[] = [];
    fakeAPI({
      'GET /api/v1/machines': () => json(200, { items: [writing, failed, other], total: 3, counts: {} }),
      'GET /api/v1/events': ({ signal }) => {
        const s = streamOf();
        signal?.addEventListener('abort', () => s.fail(new DOMException('aborted', 'AbortError')));
        streams.push(s);
        s.push(sse([{ event: 'ping', data: { time: at } }]));
        return new Response(s.body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
      },
    });
    renderAt('/', page, 'admin', true);
    await waitFor(() => expect(line(writing.mac)).toMatch(/^420 MiB of 1000 MiB · 50 MiB\/s · 1[12] s left$/));
    expect(line(failed.mac)).toBe('300 MiB of 1000 MiB downloaded');
    // A report without figures shows none.
    expect(document.querySelector(`tr[data-mac="${other.mac}"] .download`)).toBeNull();

    const later = new Date().toISOString();
    streams[0]!.push(
      sse([{ event: 'machine', data: { type: 'updated', machine: { ...writing, progress: 90, revision: 2,
        progress_detail: { bytes_done: 900 * MiB, bytes_total: 1000 * MiB, rate_bps: 40 * MiB, eta_seconds: 3, at: later } } } }]),
    );
    await waitFor(() => expect(line(writing.mac)).toMatch(/^900 MiB of 1000 MiB · 40 MiB\/s · [23] s left$/));
  });
});
