// The boot script card of the machine page: what the machine gets on its
// next network boot, from the API's read-only preview (fetching
// /boot/{mac} itself would issue a new boot nonce and revoke the one a
// running discovery agent holds).
import { useEffect, useState } from 'preact/hooks';
import { must } from '../api/client';
import { ApiError, message } from '../api/problem';
import type { BootScript } from '../api/types';
import { Notice } from '../components/common';
import { useSession } from '../lib/session';

const kinds: Record<string, string> = {
  discovery: 'Discovery: the discovery OS, which reports the inventory and waits for a decision.',
  production: 'Production: the profile’s kernel, initrd and command line (or its own script).',
  local: 'Local disk: the installed system boots from its disk.',
  menu: 'A boot menu: production, rediscover, local disk or an iPXE shell.',
  rejected: 'Rejected: the machine is told so and nothing boots.',
  unknown: 'Unknown machine: nothing boots.',
};

/** BootScriptCard loads the preview again whenever rev changes. */
export function BootScriptCard({ mac, rev }: { mac: string; rev: number }) {
  const { session } = useSession();
  // undefined: loading; null: this appliance offers no preview.
  const [bs, setBs] = useState<BootScript | null | undefined>(undefined);
  const [error, setError] = useState('');

  useEffect(() => {
    const ac = new AbortController();
    must(session.client.GET('/api/v1/machines/{mac}/boot-script', { params: { path: { mac } }, signal: ac.signal }))
      .then((got) => {
        setBs(got);
        setError('');
      })
      .catch((err) => {
        if (ac.signal.aborted) return;
        if (err instanceof ApiError && err.status === 404) setBs(null);
        else setError(message(err));
      });
    return () => ac.abort();
  }, [mac, rev]);

  return (
    <article class="card wide boot-script" data-kind={bs?.kind}>
      <h2>Boot script</h2>
      {error ? (
        <Notice>Could not load the boot script: {error}</Notice>
      ) : bs === undefined ? (
        <p class="muted">Loading…</p>
      ) : bs === null ? (
        <p class="muted">
          This appliance offers no preview of boot scripts. The machine’s script is served at <span class="mono">/boot/{mac}</span>.
        </p>
      ) : (
        <>
          <p class="muted">
            {kinds[bs.kind] ?? ''} Served at <span class="mono">/boot/{bs.mac}</span> on the next network boot
            {bs.kind === 'discovery' ? '; the real one-time boot nonce takes the place of NONCE-ISSUED-AT-BOOT' : ''}.
          </p>
          {bs.error && <Notice>No boot script can be rendered ({bs.error}); the machine gets this one, which stops its boot:</Notice>}
          <pre class="script" tabIndex={0} aria-label={`Boot script of ${bs.mac}`}>
            <code>{bs.text}</code>
          </pre>
        </>
      )}
    </article>
  );
}
