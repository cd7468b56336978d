// What the GitOps indicator says: whether the Git repository is in step
// with the appliance (GET /api/v1/gitops). Pure, so that it is tested
// without a browser.
import type { GitOpsStatus } from '../api/types';
import { relTime } from './format';

export type GitOpsLevel = 'off' | 'ok' | 'pending' | 'error';

export interface GitOpsView {
  level: GitOpsLevel;
  /** badge is the short text in the header. */
  badge: string;
  /** banner is the sentence shown under the header; '' for none. */
  banner: string;
  /** title is the badge's tooltip. */
  title: string;
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** describeGitOps turns the repository's state into what the dashboard shows. */
export function describeGitOps(s: GitOpsStatus | null | undefined, now: number = Date.now()): GitOpsView {
  if (!s || !s.enabled) return { level: 'off', badge: '', banner: '', title: '' };
  const where = `${s.remote} (${s.branch}, ${s.directory}/)`;
  const waiting = plural(s.pending ?? 0, 'commit', 'commits');
  if (s.last_error) {
    const held = (s.pending ?? 0) > 0
      ? `${waiting} wait in the appliance and will be pushed when it answers; nothing is lost.`
      : 'Changes are committed in the appliance meanwhile and pushed when it answers; nothing is lost.';
    return {
      level: 'error',
      badge: (s.pending ?? 0) > 0 ? `git: ${waiting} waiting` : 'git: remote unavailable',
      banner: `The Git repository ${s.remote} (${s.branch}) cannot be updated since ${relTime(s.failing_since, now)}: ${s.last_error}. ${held}`,
      title: where,
    };
  }
  if ((s.pending ?? 0) > 0 || !s.following) {
    return { level: 'pending', badge: s.following ? `git: ${waiting} to push` : 'git: catching up', banner: '', title: where };
  }
  const pushed = s.last_push ? `last push ${relTime(s.last_push, now)}` : 'nothing pushed yet';
  return { level: 'ok', badge: 'git: in step', banner: '', title: `${where}; ${pushed}` };
}
