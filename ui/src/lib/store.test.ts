import { describe, expect, it } from 'vitest';
import { describeStore } from './store';

const about = (store: { backend: 'badger' | 'etcd'; healthy: boolean; error?: string }) => ({
  version: 'dev',
  api_version: '1.0.0',
  store,
});

describe('describeStore', () => {
  it('shows nothing for one appliance on its own disk', () => {
    expect(describeStore(about({ backend: 'badger', healthy: true })).level).toBe('off');
    expect(describeStore(null).level).toBe('off');
  });
  it('shows a quiet badge for a healthy etcd', () => {
    const v = describeStore(about({ backend: 'etcd', healthy: true }));
    expect(v).toEqual({ level: 'ok', badge: 'etcd: ok', banner: '' });
  });
  it('names the backend and the cause when it does not answer', () => {
    const v = describeStore(about({ backend: 'etcd', healthy: false, error: 'store backend: store backend unavailable: context deadline exceeded' }));
    expect(v.level).toBe('error');
    expect(v.badge).toBe('etcd: unavailable');
    expect(v.banner).toContain('etcd backend does not answer: store backend: store backend unavailable');
    expect(v.banner).toContain('approvals are refused');
  });
});
