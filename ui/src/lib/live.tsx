// One event stream per signed-in tab: it keeps the machine list current
// and lets any page listen for changes (the machine page reloads its
// inventory and history when its machine changes).
import { createContext, type ComponentChildren } from 'preact';
import { useContext, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { connectEvents, type StreamStatus } from '../api/events';
import type { MachineEvent } from '../api/types';
import { useSession } from './session';

export interface Live {
  status: StreamStatus;
  /**
   * epoch grows whenever the stream (re)connects or the server says that
   * it dropped events: what a page shows may be stale, and it loads again.
   */
  epoch: number;
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
  const [status, setStatus] = useState<StreamStatus>('connecting');
  const [epoch, setEpoch] = useState(0);
  const listeners = useRef(new Set<(ev: MachineEvent) => void>());

  useEffect(() => {
    const ac = new AbortController();
    void connectEvents({
      url: '/api/v1/events',
      token: session.token,
      signal: ac.signal,
      onStatus(s) {
        setStatus(s);
        // Every (re)connection may have missed changes.
        if (s === 'open') setEpoch((e) => e + 1);
        if (s === 'unauthorized') signOut('Your token is no longer valid; sign in again.');
      },
      onMessage(m) {
        if (m.event === 'resync') {
          setEpoch((e) => e + 1);
          return;
        }
        if (m.event !== 'machine') return;
        const ev = parseMachineEvent(m.data);
        if (!ev) return;
        for (const fn of listeners.current) fn(ev);
      },
    });
    return () => ac.abort();
  }, [session.token]);

  const value = useMemo<Live>(
    () => ({
      status,
      epoch,
      listen(fn) {
        listeners.current.add(fn);
        return () => listeners.current.delete(fn);
      },
    }),
    [status, epoch],
  );
  return <LiveContext.Provider value={value}>{children}</LiveContext.Provider>;
}
