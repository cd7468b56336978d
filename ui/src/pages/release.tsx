// After an install: the machine page's report of it (installed and
// waiting for the first boot, the deploy time, the host keys, a pending
// release's wipe) and the dialogs that release, redeploy and bind a
// machine. Which of them the page offers comes from the API's `actions`.
import { useEffect, useState } from 'preact/hooks';
import { must } from '../api/client';
import { message } from '../api/problem';
import type { Machine, Profile } from '../api/types';
import { Dialog, Field, KV, Notice } from '../components/common';
import { absTime, relTime } from '../lib/format';
import { shortID } from '../lib/registrations';
import {
  awaitingBind, awaitingFirstBoot, currentFirstBoot, deployTime, knownHosts, pendingWipe, redeployNext, wipeScope,
} from '../lib/release';
import { useSession } from '../lib/session';
import { normalizeToken } from '../lib/wizard';

/** InstallReport is what the status card says after the image is written. */
export function InstallReport({ m, now }: { m: Machine; now: number }) {
  const fb = currentFirstBoot(m);
  const hosts = knownHosts(m);
  const took = deployTime(m);
  return (
    <>
      {awaitingFirstBoot(m) && (
        <p class="hint" data-installed="waiting">
          The image is written and the machine boots its disk; it is ready when the installed system reports its first boot.
        </p>
      )}
      {(took || fb) && (
        <div class="install-report">
          <KV
            items={[
              ['Ready since', m.ready_at && <span title={absTime(m.ready_at)}>{relTime(m.ready_at, now)}</span>],
              ['Deploy time', took && <span data-deploy-time>{took} from approval to ready</span>],
              ['First boot', fb && `${relTime(fb.at, now)}${fb.hostname ? ` as ${fb.hostname}` : ''}`],
            ]}
          />
        </div>
      )}
      {hosts.length > 0 && (
        <>
          <h3>SSH host keys</h3>
          <p class="hint">From the installed system’s first boot, as lines for <code>~/.ssh/known_hosts</code>:</p>
          <pre class="script known-hosts" aria-label="SSH host keys as known_hosts lines">{hosts.join('\n')}</pre>
        </>
      )}
    </>
  );
}

/** PendingNotice says what a release or a redeploy waits for. */
export function PendingNotice({ m, admin }: { m: Machine; admin: boolean }) {
  const w = pendingWipe(m);
  if (w) {
    return (
      <div class="notice notice-info wipe-pending" role="status" data-wipe={m.wipe?.secure_erase ? 'secure' : w.full ? 'full' : 'quick'}>
        <strong>Release pending: disks are wiped at the next discovery boot</strong> ({wipeScope(w.full, m.wipe?.secure_erase)}).{' '}
        {w.wiped.length === 0
          ? 'No registration has wiped yet: boot the machine into discovery; its agent wipes and reports.'
          : `Wiped by registration ${w.wiped.map((r) => shortID(r.id)).join(', ')}: ${admin ? 'approve it' : 'it can be approved'} with the token its console shows.`}
      </div>
    );
  }
  if (awaitingBind(m)) {
    return (
      <div class="notice notice-info bind-pending" role="status">
        <strong>Waiting for a new boot.</strong> Boot the machine into discovery and {admin ? 'bind' : 'an administrator binds'} that boot
        with the token its console shows; its agent then installs {m.profile || 'the profile'}.
      </div>
    );
  }
  return null;
}

/** useAct posts one machine action and hands back the machine it answers. */
function useAct(onDone: (m: Machine) => void) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  async function run(call: () => Promise<Machine>) {
    setBusy(true);
    setError('');
    try {
      onDone(await call());
    } catch (err) {
      setError(message(err));
    } finally {
      setBusy(false);
    }
  }
  return { busy, error, setError, run };
}

interface DialogProps {
  m: Machine;
  open: boolean;
  onClose: () => void;
  onDone: (m: Machine) => void;
}

/** ReleaseDialog confirms a release and what its wipe destroys. */
export function ReleaseDialog({ m, open, onClose, onDone }: DialogProps) {
  const { session } = useSession();
  const [full, setFull] = useState(false);
  const [secure, setSecure] = useState(false);
  const act = useAct((got) => { setFull(false); setSecure(false); onDone(got); });
  useEffect(() => { if (open) act.setError(''); }, [open]);
  const body = { full, ...(secure ? { secure_erase: true } : {}) };
  const release = () =>
    act.run(() => must(session.client.POST('/api/v1/machines/{mac}/release', { params: { path: { mac: m.mac } }, body })));
  return (
    <Dialog title="Release machine" open={open} onClose={onClose}>
      <p>
        Release {m.hostname} ({m.mac})? Its boot sessions end and it is discovered again. At its next boot into discovery its agent
        wipes {wipeScope(full, secure)} and reports it; <strong>everything on those disks is lost</strong>. Then approve it again, as a new
        machine, with the token its console shows.
      </p>
      <Field
        label="Wipe every byte"
        name="full"
        hint={
          full
            ? 'Overwrites each whole disk: hours for large disks.'
            : 'Otherwise only partition tables, signatures and the first and last MiB of each disk: quick, and nothing boots or mounts from them.'
        }
      >
        {(p) => <input {...p} type="checkbox" checked={full} onChange={(e) => setFull(e.currentTarget.checked)} />}
      </Field>
      <Field
        label="Secure erase"
        name="secure_erase"
        hint="Each drive erases itself (NVMe: Format with user-data erase); a disk that cannot is overwritten in full. The report names what was done to each."
      >
        {(p) => <input {...p} type="checkbox" checked={secure} onChange={(e) => setSecure(e.currentTarget.checked)} />}
      </Field>
      {act.error && <Notice>{act.error}</Notice>}
      <div class="actions">
        <button type="button" class="danger" disabled={act.busy} onClick={release}>
          {act.busy ? 'Releasing…' : secure ? 'Release and secure-erase' : full ? 'Release and wipe every byte' : 'Release and wipe'}
        </button>
        <button type="button" class="secondary" onClick={onClose}>Cancel</button>
      </div>
    </Dialog>
  );
}

/** RedeployDialog installs a ready machine again with a chosen profile. */
export function RedeployDialog({ m, open, onClose, onDone }: DialogProps) {
  const { session } = useSession();
  const [profiles, setProfiles] = useState<Profile[]>([]);
  const [profile, setProfile] = useState(m.profile ?? '');
  const act = useAct(onDone);
  useEffect(() => {
    if (!open) return;
    act.setError('');
    setProfile(m.profile ?? '');
    const ac = new AbortController();
    must(session.client.GET('/api/v1/profiles', { signal: ac.signal }))
      .then((ps) => setProfiles(ps ?? []))
      .catch((err) => { if (!ac.signal.aborted) act.setError(`Could not load the profiles: ${message(err)}`); });
    return () => ac.abort();
  }, [open]);
  const chosen = profiles.find((p) => p.name === profile);
  const redeploy = () =>
    act.run(() => must(session.client.POST('/api/v1/machines/{mac}/redeploy', { params: { path: { mac: m.mac } }, body: { profile } })));
  return (
    <Dialog title="Redeploy machine" open={open} onClose={onClose}>
      <p>
        Install {m.hostname} again. The approval stays: host name, cluster, disk, SSH keys and network. What is on the disk is
        overwritten by an image profile.
      </p>
      <Field label="Profile" name="profile" hint={<span data-next>{redeployNext(chosen)}</span>}>
        {(p) => (
          <select {...p} value={profile} onChange={(e) => setProfile(e.currentTarget.value)}>
            {!profiles.some((x) => x.name === m.profile) && m.profile && <option value={m.profile}>{m.profile}</option>}
            {profiles.map((x) => (
              <option key={x.name} value={x.name}>{x.name} ({x.kind}){x.name === m.profile ? ', current' : ''}</option>
            ))}
          </select>
        )}
      </Field>
      {act.error && <Notice>{act.error}</Notice>}
      <div class="actions">
        <button type="button" disabled={act.busy || !profile} onClick={redeploy}>{act.busy ? 'Redeploying…' : 'Redeploy'}</button>
        <button type="button" class="secondary" onClick={onClose}>Cancel</button>
      </div>
    </Dialog>
  );
}

/** BindDialog hands the install to the boot whose console shows a token. */
export function BindDialog({ m, open, onClose, onDone }: DialogProps) {
  const { session } = useSession();
  const [text, setText] = useState('');
  const act = useAct((got) => { setText(''); onDone(got); });
  useEffect(() => { if (open) act.setError(''); }, [open]);
  function submit(e: Event) {
    e.preventDefault();
    const token = normalizeToken(text);
    if (!token) {
      act.setError('not a token like FOUNDRY-ABCD-EFGH-JKLM');
      return;
    }
    act.run(() => must(session.client.POST('/api/v1/machines/{mac}/bind', { params: { path: { mac: m.mac } }, body: { token } })));
  }
  return (
    <Dialog title="Bind a new boot" open={open} onClose={onClose}>
      <form onSubmit={submit}>
        <p>
          Boot {m.hostname} into discovery; its console shows a registration token. That boot takes over the install of{' '}
          {m.profile || 'its profile'} with the approval as it is, and the boot it replaces can no longer install or report.
          A wrong token counts as a failed approval attempt.
        </p>
        <Field label="Console token" name="token" error={act.error}>
          {(p) => (
            <input {...p} class="mono" autocomplete="off" spellcheck={false} placeholder="FOUNDRY-XXXX-XXXX-XXXX" value={text}
              onInput={(e) => setText(e.currentTarget.value)} />
          )}
        </Field>
        <div class="actions">
          <button type="submit" disabled={act.busy}>{act.busy ? 'Binding…' : 'Bind'}</button>
          <button type="button" class="secondary" onClick={onClose}>Cancel</button>
        </div>
      </form>
    </Dialog>
  );
}
