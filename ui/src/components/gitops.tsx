// The GitOps indicator in the header, and the banner under it while the
// Git repository cannot be updated (the remote is down or refusing).
// Nothing is shown when the appliance has no gitops configuration.
import { must } from '../api/client';
import type { GitOpsStatus } from '../api/types';
import { describeGitOps } from '../lib/gitops';
import { usePolled } from '../lib/hooks';
import { useSession } from '../lib/session';

/** useGitOps polls GET /api/v1/gitops every `every` ms. */
export function useGitOps(every = 10000): GitOpsStatus | null {
  const { session } = useSession();
  return usePolled(() => must(session.client.GET('/api/v1/gitops')), every, [session]);
}

export function GitOpsBadge({ status }: { status: GitOpsStatus | null }) {
  const v = describeGitOps(status);
  if (v.level === 'off') return null;
  return (
    <span class={`live gitops gitops-${v.level}`} data-gitops={v.level} title={v.title}>
      {v.badge}
    </span>
  );
}

export function GitOpsBanner({ status }: { status: GitOpsStatus | null }) {
  const v = describeGitOps(status);
  if (!v.banner) return null;
  return (
    <div class="notice notice-error gitops-banner" role="alert">
      {v.banner}
    </div>
  );
}
