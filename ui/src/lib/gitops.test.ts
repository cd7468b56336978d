import { describe, expect, it } from 'vitest';
import { describeGitOps } from './gitops';
import type { GitOpsStatus } from '../api/types';

const base: GitOpsStatus = {
  enabled: true,
  remote: 'ssh://git@git.example.org/infra/fleet.git',
  branch: 'main',
  directory: 'hardware',
  pending: 0,
  declarations: 0,
  approve_without_token: false,
  following: true,
};
const now = Date.parse('2026-01-05T10:00:00Z');

describe('describeGitOps', () => {
  it.each([
    ['not configured', { ...base, enabled: false }, 'off', ''],
    ['in step', base, 'ok', 'git: in step'],
    ['commits to push', { ...base, pending: 2 }, 'pending', 'git: 2 commits to push'],
    ['starting', { ...base, following: false }, 'pending', 'git: catching up'],
    ['remote down', { ...base, pending: 1, last_error: 'dial tcp: connection refused', failing_since: '2026-01-05T09:50:00Z' }, 'error', 'git: 1 commit waiting'],
    ['remote down, nothing waiting', { ...base, last_error: 'repository not found', failing_since: '2026-01-05T09:50:00Z' }, 'error', 'git: remote unavailable'],
  ] as const)('%s', (_, s, level, badge) => {
    const v = describeGitOps(s as GitOpsStatus, now);
    expect(v.level).toBe(level);
    expect(v.badge).toBe(badge);
  });

  it('says why, since when and that nothing is lost while the remote is down', () => {
    const v = describeGitOps({ ...base, pending: 3, last_error: 'push rejected: non-fast-forward', failing_since: '2026-01-05T09:50:00Z' }, now);
    expect(v.banner).toContain('ssh://git@git.example.org/infra/fleet.git (main)');
    expect(v.banner).toContain('10 min ago');
    expect(v.banner).toContain('push rejected');
    expect(v.banner).toContain('3 commits wait');
  });

  it('shows nothing without a status', () => {
    expect(describeGitOps(null).level).toBe('off');
  });
});
