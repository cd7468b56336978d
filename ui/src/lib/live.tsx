// One event stream per signed-in tab: it keeps the machine list current
// and lets any page listen for changes (the machine page reloads its
// inventory and history when its machine changes).
import { createContext, type ComponentChildren } from 'preact';
import { useContext, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { connectEvents, type StreamStatus } from '../api/events';
import { must } from '../api/client';
import type { Machine, MachineEvent } from '../api/types';
import { applyEvent, fromList, type MachineMap } from './machines';
import { useSession } from './session';

export interface Live {
  machines: MachineMap;
  loaded: boolean;
  status: StreamStatus;
  /** The error of the last list load, if it failed. */
  error: string;
  /** listen calls fn for every machine event until the returned function is called. */
  listen: (fn: (ev: MachineEvent) => void) => () => void;
}

const LiveContext = createContext<Live | null>(null);

export function useLive(): Live {
  const l = useContext(LiveContext);
  if (!l) throw new Error('useLive outside LiveProvider');
  return l;
}

/** parseMachineEvent reads the data of a `machine` event; undefined if malformed. */
export function parseMachineEvent(data: string): MachineEvent | undefined {
  try {
    const v = JSON.parse(data) as MachineEvent;
    if (!v || typeof v !== 'object' || typeof v.type !== 'string') return undefined;
    if (!v.machine || typeof v.machine.mac !== 'string' || typeof v.machine.revision !== 'number') return undefined;
    return v;
  } catch {
    return undefined;
  }
}

export function LiveProvider({ children }: { children: ComponentChildren }) {
  const { session, signOut } = useSession();
  const [machines, setMachines] = useState<MachineMap>(new Map());
  const [loaded, setLoaded] = useState(false);
  const [status, setStatus] = useState<StreamStatus>('connecting');
  const [error, setError] = useState('');
  const listeners = useRef(new Set<(ev: MachineEvent) => void>());

  useEffect(() => {
    const ac = new AbortController();
    // Events that arrive while the list loads are replayed on top of it.
    let pending: MachineEvent[] | null = null;
    let loadSeq = 0;

    async function load() {
      const seq = ++loadSeq;
      pending = [];
      try {
        const items: Machine[] = [];
        let cursor: string | undefined;
        do {
          const page = await must(
            session.client.GET('/api/v1/machines', {
              params: { query: { limit: 1000, sort: 'mac', ...(cursor ? { cursor } : {}) } },
              signal: ac.signal,
            }),
          );
          items.push(...(page.items ?? []));
          cursor = page.next_cursor || undefined;
        } while (cursor);
        if (seq !== loadSeq) return;
        setMachines(fromList(items, pending));
        setLoaded(true);
        setError('');
      } catch (err) {
        if (!ac.signal.aborted && seq === loadSeq) setError(err instanceof Error ? err.message : String(err));
      } finally {
        if (seq === loadSeq) pending = null;
      }
    }

    void connectEvents({
      url: '/api/v1/events',
      token: session.token,
      signal: ac.signal,
      onStatus(s) {
        setStatus(s);
        // Every (re)connection may have missed changes: reload the list.
        if (s === 'open') void load();
        if (s === 'unauthorized') signOut('Your token is no longer valid; sign in again.');
      },
      onMessage(m) {
        if (m.event === 'resync') {
          void load();
          return;
        }
        if (m.event !== 'machine') return;
        const ev = parseMachineEvent(m.data);
        if (!ev) return;
        if (pending) pending.push(ev);
        setMachines((cur) => applyEvent(cur, ev));
        for (const fn of listeners.current) fn(ev);
      },
    });
    return () => ac.abort();
  }, [session.token]);

  const value = useMemo<Live>(
    () => ({
      machines,
      loaded,
      status,
      error,
      listen(fn) {
        listeners.current.add(fn);
        return () => listeners.current.delete(fn);
      },
    }),
    [machines, loaded, status, error],
  );
  return <LiveContext.Provider value={value}>{children}</LiveContext.Provider>;
}
