import { describe, expect, it, vi } from 'vitest';
import { backoff, connectEvents, readEventStream, type EventSourceMessage, type StreamStatus } from './events';
import { streamOf } from '../test/fixtures';

describe('readEventStream', () => {
  it('parses events split anywhere across chunks', async () => {
    const text =
      ': comment\n' +
      'event: ping\ndata: {"time":"2026-01-01T00:00:00Z"}\n\n' +
      'event: machine\nid: 7\ndata: {"type":"created",\ndata: "machine":{"mac":"52:54:00:12:34:56"}}\n\n' +
      'data: no event name\r\n\r\n' +
      'event: machine\ndata: {"type":"updated€"}\n\n';
    // Every split point, including inside the multi-byte €.
    const bytes = new TextEncoder().encode(text);
    for (const size of [1, 2, 3, 7, 64, bytes.length]) {
      const s = streamOf();
      const got: EventSourceMessage[] = [];
      const done = readEventStream(s.body, (m) => got.push(m));
      for (let i = 0; i < bytes.length; i += size) s.pushBytes(bytes.slice(i, i + size));
      s.close();
      await done;
      expect(got.map((m) => m.event ?? '')).toEqual(['ping', 'machine', '', 'machine']);
      expect(JSON.parse(got[1]!.data)).toEqual({ type: 'created', machine: { mac: '52:54:00:12:34:56' } });
      expect(got[1]!.id).toBe('7');
      expect(got[2]!.data).toBe('no event name');
      expect(got[3]!.data).toBe('{"type":"updated€"}');
    }
  });

  it('drops an unterminated last event', async () => {
    const s = streamOf();
    const got: EventSourceMessage[] = [];
    const done = readEventStream(s.body, (m) => got.push(m));
    s.push('event: machine\ndata: {"a":1}\n\nevent: machine\ndata: {"b"');
    s.close();
    await done;
    expect(got).toHaveLength(1);
  });

  it('rejects when the stream fails', async () => {
    const s = streamOf();
    const done = readEventStream(s.body, () => {});
    s.fail(new Error('connection reset'));
    await expect(done).rejects.toThrow('connection reset');
  });
});

describe('backoff', () => {
  it('doubles from the initial delay up to the maximum, plus jitter', () => {
    const none = () => 0;
    expect([0, 1, 2, 3, 10, 100].map((a) => backoff(a, 500, 15000, 0.2, none))).toEqual([500, 1000, 2000, 4000, 15000, 15000]);
    expect(backoff(0, 500, 15000, 0.2, () => 1)).toBe(600);
  });
});

describe('connectEvents', () => {
  function ok(body: ReadableStream<Uint8Array>) {
    return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
  }

  it('sends the token, reconnects after the stream ends and after errors, then stops on abort', async () => {
    const ac = new AbortController();
    const statuses: StreamStatus[] = [];
    const got: string[] = [];
    const streams = [streamOf(), streamOf()];
    let calls = 0;
    const fetchMock = vi.fn(async (_url: string, init?: RequestInit) => {
      expect(new Headers(init?.headers).get('Authorization')).toBe('Bearer tok');
      calls++;
      if (calls === 1) return ok(streams[0]!.body);
      if (calls === 2) throw new TypeError('network down');
      if (calls === 3) return new Response('busy', { status: 503 });
      return ok(streams[1]!.body);
    });
    const done = connectEvents({
      url: '/api/v1/events',
      token: 'tok',
      signal: ac.signal,
      fetch: fetchMock as unknown as typeof fetch,
      initialDelay: 1,
      maxDelay: 4,
      jitter: 0,
      onStatus: (s) => statuses.push(s),
      onMessage: (m) => got.push(m.data),
    });
    await vi.waitFor(() => expect(statuses).toContain('open'));
    streams[0]!.push('event: machine\ndata: 1\n\n');
    streams[0]!.close();
    await vi.waitFor(() => expect(calls).toBe(4));
    await vi.waitFor(() => expect(statuses.filter((s) => s === 'open')).toHaveLength(2));
    streams[1]!.push('event: machine\ndata: 2\n\n');
    await vi.waitFor(() => expect(got).toEqual(['1', '2']));
    ac.abort();
    await done;
    expect(statuses[0]).toBe('connecting');
    expect(statuses).toContain('reconnecting');
    expect(statuses.at(-1)).toBe('closed');
  });

  it.each([401, 403])('gives up on %i: the token is not valid', async (status) => {
    const statuses: StreamStatus[] = [];
    const fetchMock = vi.fn(async () => new Response('{}', { status }));
    await connectEvents({
      url: '/x', token: 't', signal: new AbortController().signal,
      fetch: fetchMock as unknown as typeof fetch, initialDelay: 1,
      onStatus: (s) => statuses.push(s), onMessage: () => {},
    });
    expect(fetchMock).toHaveBeenCalledTimes(1);
    expect(statuses).toEqual(['connecting', 'unauthorized']);
  });
});
