import { useEffect, useState } from 'preact/hooks';
import { message } from '../api/problem';

/** useNow re-renders every `every` ms so relative times stay true. */
export function useNow(every = 15000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), every);
    return () => clearInterval(t);
  }, [every]);
  return now;
}

/** useTitle sets the document title while a page is shown. */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · Foundry` : 'Foundry';
  }, [title]);
}

/**
 * useLoad runs load when the page is shown and again on every reload. A
 * failure keeps the data already shown and sets error; a success clears it.
 */
export function useLoad<D>(load: () => Promise<D>, initial: D): { data: D; error: string; reload: () => void } {
  const [data, setData] = useState(initial);
  const [error, setError] = useState('');
  const [seq, setSeq] = useState(0);
  useEffect(() => {
    (async () => {
      try {
        const d = await load();
        setData(() => d);
        setError('');
      } catch (err) {
        setError(message(err));
      }
    })();
  }, [seq]);
  return { data, error, reload: () => setSeq((s) => s + 1) };
}

/**
 * usePolled calls load at once and every `every` ms while the component is
 * shown, and returns its last answer (null before the first). A failed
 * call keeps what was shown: the header's live badge reports a broken
 * connection already.
 */
export function usePolled<D>(load: () => Promise<D>, every: number, deps: unknown[]): D | null {
  const [data, setData] = useState<D | null>(null);
  useEffect(() => {
    let live = true;
    const run = () =>
      load()
        .then((d) => live && setData(() => d))
        .catch(() => {});
    run();
    const t = setInterval(run, every);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [...deps, every]);
  return data;
}
