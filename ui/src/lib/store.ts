// What the store indicator says: where the appliance keeps its records and
// whether that answers (GET /api/v1/about). On one appliance (Badger)
// nothing is shown; on a fleet's etcd cluster a badge, and a banner while
// the cluster cannot be reached. Pure, so that it is tested without a
// browser.
import type { About } from '../api/types';

export type StoreLevel = 'off' | 'ok' | 'error';

export interface StoreView {
  level: StoreLevel;
  badge: string;
  /** banner is the sentence under the header; '' for none. */
  banner: string;
}

/** describeStore turns GET /api/v1/about into what the dashboard shows. */
export function describeStore(a: About | null | undefined): StoreView {
  const s = a?.store;
  if (!s) return { level: 'off', badge: '', banner: '' };
  if (!s.healthy) {
    return {
      level: 'error',
      badge: `${s.backend}: unavailable`,
      banner:
        `The store's ${s.backend} backend does not answer${s.error ? `: ${s.error}` : ''}. ` +
        'New machines, leases, registrations and approvals are refused until it is back; ' +
        'machines already known keep booting from what this appliance last knew.',
    };
  }
  if (s.backend === 'badger') return { level: 'off', badge: '', banner: '' };
  return { level: 'ok', badge: `${s.backend}: ok`, banner: '' };
}
