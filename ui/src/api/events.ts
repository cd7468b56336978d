// The machine event stream: server-sent events read with fetch() rather
// than EventSource, because EventSource cannot send the Authorization
// header. Parsing is eventsource-parser's; this file adds the connection
// loop with backoff.
import { createParser, type EventSourceMessage } from 'eventsource-parser';

export type { EventSourceMessage };

/**
 * readEventStream feeds a response body to the SSE parser and calls onMessage
 * for every complete event. It resolves when the stream ends (or signal
 * aborts, which cancels the stream) and rejects on a read error.
 */
export async function readEventStream(
  body: ReadableStream<Uint8Array>,
  onMessage: (m: EventSourceMessage) => void,
  signal?: AbortSignal,
): Promise<void> {
  const parser = createParser({ onEvent: onMessage });
  const reader = body.getReader();
  const dec = new TextDecoder();
  const cancel = () => void reader.cancel().catch(() => {});
  signal?.addEventListener('abort', cancel, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parser.feed(dec.decode(value, { stream: true }));
    }
    const tail = dec.decode();
    if (tail) parser.feed(tail);
  } finally {
    signal?.removeEventListener('abort', cancel);
    reader.releaseLock();
  }
}

export type StreamStatus = 'connecting' | 'open' | 'reconnecting' | 'unauthorized' | 'closed';

export interface StreamOptions {
  url: string;
  token: string;
  onMessage: (m: EventSourceMessage) => void;
  /** Called on every status change; 'open' is the moment to (re)load state. */
  onStatus?: (s: StreamStatus, detail?: string) => void;
  signal: AbortSignal;
  fetch?: typeof fetch;
  /** First retry delay in ms (doubles up to maxDelay); default 500. */
  initialDelay?: number;
  /** Longest retry delay in ms; default 15000. */
  maxDelay?: number;
  /** Random fraction added to each delay so clients do not retry in step; default 0.2. */
  jitter?: number;
}

/** backoff is the delay before retry number attempt (0-based). */
export function backoff(attempt: number, initial = 500, max = 15000, jitter = 0.2, rnd = Math.random): number {
  const base = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.round(base * (1 + jitter * rnd()));
}

/**
 * connectEvents keeps the stream open until the signal aborts. A stream that
 * ends or fails is reopened after a growing delay, which starts again from the
 * shortest once a connection succeeds. A 401 or 403 stops for good: the
 * token is no longer valid.
 */
export async function connectEvents(o: StreamOptions): Promise<void> {
  const f = o.fetch ?? fetch.bind(globalThis);
  let attempt = 0;
  let first = true;
  while (!o.signal.aborted) {
    o.onStatus?.(first ? 'connecting' : 'reconnecting');
    first = false;
    let detail = '';
    try {
      const res = await f(o.url, {
        headers: { Authorization: `Bearer ${o.token}`, Accept: 'text/event-stream' },
        cache: 'no-store',
        signal: o.signal,
      });
      if (res.status === 401 || res.status === 403) {
        o.onStatus?.('unauthorized', `HTTP ${res.status}`);
        return;
      }
      if (!res.ok || !res.body) {
        detail = `HTTP ${res.status}`;
      } else {
        attempt = 0;
        o.onStatus?.('open');
        await readEventStream(res.body, o.onMessage, o.signal);
        detail = 'stream ended';
      }
    } catch (err) {
      if (o.signal.aborted) break;
      detail = err instanceof Error ? err.message : String(err);
    }
    if (o.signal.aborted) break;
    o.onStatus?.('reconnecting', detail);
    await sleep(backoff(attempt++, o.initialDelay, o.maxDelay, o.jitter), o.signal);
  }
  o.onStatus?.('closed');
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
