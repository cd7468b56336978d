// The store indicator in the header and its banner (lib/store.ts says
// what they show).
import { must } from '../api/client';
import type { About } from '../api/types';
import { describeStore } from '../lib/store';
import { usePolled } from '../lib/hooks';
import { useSession } from '../lib/session';

/** useAbout polls GET /api/v1/about every `every` ms. */
export function useAbout(every = 10000): About | null {
  const { session } = useSession();
  return usePolled(() => must(session.client.GET('/api/v1/about')), every, [session]);
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
