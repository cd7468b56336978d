// The store indicator in the header and its banner (lib/store.ts says
// what they show).
import { useEffect, useState } from 'preact/hooks';
import { must } from '../api/client';
import type { About } from '../api/types';
import { describeStore } from '../lib/store';
import { useSession } from '../lib/session';

/** useAbout polls GET /api/v1/about every `every` ms. */
export function useAbout(every = 10000): About | null {
  const { session } = useSession();
  const [about, setAbout] = useState<About | null>(null);
  useEffect(() => {
    let live = true;
    const load = () =>
      must(session.client.GET('/api/v1/about'))
        .then((a) => live && setAbout(a))
        .catch(() => {
          // The live badge reports a broken connection already.
        });
    load();
    const t = setInterval(load, every);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [session, every]);
  return about;
}

export function StoreBadge({ about }: { about: About | null }) {
  const v = describeStore(about);
  if (v.level === 'off') return null;
  return (
    <span class={`live store store-${v.level}`} data-store={v.level}>
      {v.badge}
    </span>
  );
}

export function StoreBanner({ about }: { about: About | null }) {
  const v = describeStore(about);
  if (!v.banner) return null;
  return (
    <div class="notice notice-error store-banner" role="alert">
      {v.banner}
    </div>
  );
}
