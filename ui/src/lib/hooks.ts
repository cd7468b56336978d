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
