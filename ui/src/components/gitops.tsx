// The GitOps indicator in the header, and the banner under it while the
// Git repository cannot be updated (the remote is down or refusing).
// Nothing is shown when the appliance has no gitops configuration.
import { useEffect, useState } from 'preact/hooks';
import { must } from '../api/client';
import type { GitOpsStatus } from '../api/types';
import { describeGitOps } from '../lib/gitops';
import { useSession } from '../lib/session';

/** useGitOps polls GET /api/v1/gitops every `every` ms. */
export function useGitOps(every = 10000): GitOpsStatus | null {
  const { session } = useSession();
  const [status, setStatus] = useState<GitOpsStatus | null>(null);
  useEffect(() => {
    let live = true;
    const load = () =>
      must(session.client.GET('/api/v1/gitops'))
        .then((s) => live && setStatus(s))
        .catch(() => {
          // The header keeps what it showed; the live badge reports a
          // broken connection already.
        });
    load();
    const t = setInterval(load, every);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [session, every]);
  return status;
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
