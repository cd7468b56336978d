import { useEffect, useState } from 'preact/hooks';

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
