// One machine: its state and actions, a MAC conflict and its
// registrations, provisioning, approval, the whole inventory, its DHCP
// lease, its boot script and its audit history. It reloads itself when the
// event stream reports a change of this machine.
import { useEffect, useState } from 'preact/hooks';
import { useLocation, useRoute } from 'preact-iso';
import { must } from '../api/client';
import { ApiError, message } from '../api/problem';
import type { AuditEntry, Lease, Machine } from '../api/types';
import { Dialog, KV, Notice, Progress, StateBadge } from '../components/common';
import { absTime, relTime } from '../lib/format';
import { useNow, useTitle } from '../lib/hooks';
import { asInventory } from '../lib/inventory';
import { useLive } from '../lib/live';
import { can } from '../lib/machines';
import { tokenState } from '../lib/registrations';
import { useAdmin, useSession } from '../lib/session';
import { BootCard } from './boot';
import { BootScriptCard } from './bootscript';
import { Inventory } from './inventory';
import { PowerCard } from './power';
import { RejectDialog, Status } from './machines';
import { BindDialog, InstallReport, PendingNotice, RedeployDialog, ReleaseDialog } from './release';
import { ConflictBadge, ConflictBanner, RegistrationsCard } from './registrations';

export function MachinePage() {
  const { params } = useRoute();
  // The MAC as the address bar has it; the API reads any notation, and
  // the page moves to the machine's own (canonical) MAC once it is known.
  const mac = params.mac ?? '';
  const { session } = useSession();
  const admin = useAdmin();
  const live = useLive();
  const now = useNow();
  const { route } = useLocation();
  const [m, setM] = useState<Machine | null>(null);
  const [gone, setGone] = useState(false);
  const [error, setError] = useState('');
  const [audit, setAudit] = useState<AuditEntry[]>([]);
  const [lease, setLease] = useState<Lease | null | undefined>(undefined);
  const [rev, setRev] = useState(0);
  const [rejecting, setRejecting] = useState(false);
  const [confirm, setConfirm] = useState<'' | 'rediscover' | 'delete'>('');
  const [dialog, setDialog] = useState<'' | 'release' | 'redeploy' | 'bind'>('');
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState('');
  useTitle(m?.hostname ?? mac);

  // Reload on every change of this machine.
  useEffect(
    () =>
      live.listen((ev) => {
        if (ev.machine.mac !== mac) return;
        if (ev.type === 'deleted') setGone(true);
        else setRev((r) => r + 1);
      }),
    [mac],
  );

  useEffect(() => {
    const ac = new AbortController();
    (async () => {
      try {
        const got = await must(session.client.GET('/api/v1/machines/{mac}', { params: { path: { mac } }, signal: ac.signal }));
        if (got.mac !== mac) {
          // Events, leases and links name the machine by its canonical MAC.
          route(`/machines/${got.mac}`, true);
          return;
        }
        setM(got);
        setGone(false);
        setError('');
        const a = await must(session.client.GET('/api/v1/audit', { params: { query: { mac, limit: 50 } }, signal: ac.signal }));
        setAudit(a.items ?? []);
        // Leases exist only on configured dhcp-mode segments; asking for
        // another segment's would only earn a 404.
        const segs = got.segment ? await must(session.client.GET('/api/v1/segments', { signal: ac.signal })) : [];
        if (got.segment && (segs ?? []).some((s) => s.name === got.segment && s.mode === 'dhcp')) {
          try {
            const ls = await must(
              session.client.GET('/api/v1/segments/{name}/leases', { params: { path: { name: got.segment } }, signal: ac.signal }),
            );
            setLease((ls ?? []).find((l) => l.mac === mac) ?? null);
          } catch {
            setLease(null);
          }
        } else {
          setLease(null);
        }
      } catch (err) {
        if (ac.signal.aborted) return;
        if (err instanceof ApiError && err.status === 404) setGone(true);
        else setError(message(err));
      }
    })();
    return () => ac.abort();
  }, [mac, rev]);

  async function act(action: 'rediscover' | 'delete') {
    setBusy(true);
    setActionError('');
    try {
      if (action === 'delete') {
        await must(session.client.DELETE('/api/v1/machines/{mac}', { params: { path: { mac } } }));
        route('/');
      } else {
        setM(await must(session.client.POST('/api/v1/machines/{mac}/rediscover', { params: { path: { mac } } })));
      }
      setConfirm('');
    } catch (err) {
      setActionError(message(err));
    } finally {
      setBusy(false);
    }
  }

  // A release, redeploy or bind answers with the machine as it is now.
  function acted(got: Machine) {
    setM(got);
    setRev((r) => r + 1);
    setDialog('');
  }

  if (gone)
    return (
      <section>
        <h1>{mac}</h1>
        <Notice kind="info">This machine has no record (it was deleted or has expired). <a href="/">Back to the machines</a>.</Notice>
      </section>
    );
  if (error) return <Notice>Could not load {mac}: {error}</Notice>;
  if (!m) return <p class="loading" role="status">Loading {mac}…</p>;

  const inv = asInventory(m.inventory);
  // First when two hosts answer for the MAC, after the status otherwise.
  const registrations = <RegistrationsCard m={m} admin={admin} now={now} onChanged={(got) => { setM(got); setRev((r) => r + 1); }} />;
  return (
    <section class="machine" data-mac={m.mac}>
      <nav class="crumbs" aria-label="Breadcrumb"><a href="/">Machines</a> / {m.hostname}</nav>
      <div class="page-head">
        <h1>
          {m.hostname} <StateBadge state={m.state} />
          <ConflictBadge m={m} />
        </h1>
        <div class="actions" role="group" aria-label="Machine actions">
          {admin && can(m, 'approve') && (
            <a class="button" href={`/machines/${m.mac}/approve`} data-action="approve">Approve…</a>
          )}
          {admin && can(m, 'reject') && (
            <button type="button" class="danger" onClick={() => setRejecting(true)}>Reject…</button>
          )}
          {admin && can(m, 'rediscover') && (
            <button type="button" class="secondary" onClick={() => setConfirm('rediscover')}>Rediscover…</button>
          )}
          {admin && can(m, 'bind') && (
            <button type="button" data-action="bind" onClick={() => setDialog('bind')}>Bind new boot…</button>
          )}
          {admin && can(m, 'redeploy') && (
            <button type="button" class="secondary" data-action="redeploy" onClick={() => setDialog('redeploy')}>Redeploy…</button>
          )}
          {admin && can(m, 'release') && (
            <button type="button" class="secondary danger-text" data-action="release" onClick={() => setDialog('release')}>Release…</button>
          )}
          {admin && (
            <button type="button" class="secondary danger-text" onClick={() => setConfirm('delete')}>Delete…</button>
          )}
        </div>
      </div>
      {actionError && <Notice>{actionError}</Notice>}
      <ConflictBanner m={m} admin={admin} />
      <PendingNotice m={m} admin={admin} />

      <div class="grid">
        {m.mac_conflict && registrations}
        <article class="card">
          <h2>Overview</h2>
          <KV
            items={[
              ['MAC', <span class="mono">{m.mac}</span>],
              ['IP address', m.ip],
              ['Segment', m.segment],
              ['Firmware', m.arch],
              ['Cluster', m.cluster],
              ['Profile', m.profile],
              ['First seen', <span title={absTime(m.first_seen)}>{relTime(m.first_seen, now)}</span>],
              ['Last seen', <span title={absTime(m.last_seen)}>{relTime(m.last_seen, now)}</span>],
              [
                'Record',
                m.temporary ? (
                  <span class="expires">temporary, expires {relTime(m.expires_at, now)} ({absTime(m.expires_at)})</span>
                ) : (
                  'permanent'
                ),
              ],
              ['Console token', m.token ? `${tokenState(m.token, now).text}${(m.registrations?.length ?? 0) > 1 ? ' (newest registration)' : ''}` : undefined],
            ]}
          />
        </article>
        <article class="card">
          <h2>Status</h2>
          <div class="status-big">
            <Status m={m} admin={admin} now={now} />
            {m.state === 'ready' && <p>In production{m.message ? `: ${m.message}` : ''}.</p>}
          </div>
          {m.approval && (
            <>
              <h3>Approval</h3>
              <KV
                items={[
                  ['Approved by', `${m.approval.approved_by}, ${absTime(m.approval.approved_at)}`],
                  ['Disk', m.approval.disk && <span class="mono">{m.approval.disk}</span>],
                  [
                    'Network',
                    m.approval.network.mode === 'static'
                      ? `static ${m.approval.network.address ?? ''} via ${m.approval.network.gateway ?? '—'}`
                      : 'DHCP',
                  ],
                  ['DNS', m.approval.network.dns?.join(', ')],
                  ['SSH keys', m.approval.ssh_keys?.length ? `${m.approval.ssh_keys.length} key(s)` : 'none'],
                  ['Token', m.approval.token_bypassed ? 'approved WITHOUT the console token' : undefined],
                ]}
              />
            </>
          )}
          {(m.state === 'provisioning' || m.state === 'approved') && m.progress > 0 && (
            <Progress value={m.progress} label={`Provisioning progress of ${m.hostname}`} />
          )}
          <InstallReport m={m} now={now} />
        </article>
        <article class="card">
          <h2>DHCP lease</h2>
          {lease === undefined ? (
            <p class="muted">Loading…</p>
          ) : lease === null ? (
            <p class="muted">No lease on {m.segment || 'any segment'} (proxy mode, or the machine has not asked for an address).</p>
          ) : (
            <KV
              items={[
                ['Address', <span class="mono">{lease.ip}</span>],
                ['Segment', lease.segment],
                ['Host name', lease.hostname],
                ['Expires', `${relTime(lease.expires, now)} (${absTime(lease.expires)})`],
                ['Declined', lease.declined ? 'yes: the client reported the address in use' : undefined],
              ]}
            />
          )}
        </article>
        {!m.mac_conflict && registrations}
        <PowerCard m={m} admin={admin} now={now} onChanged={(got) => { setM(got); setRev((r) => r + 1); }} />
        <BootCard m={m} onSaved={(saved) => { setM(saved); setRev((r) => r + 1); }} />
        <BootScriptCard mac={mac} rev={rev} />
      </div>

      <h2 id="hardware">Hardware</h2>
      {inv ? <Inventory inv={inv} /> : <p class="muted">The discovery agent has not reported an inventory yet.</p>}

      <h2 id="history">History</h2>
      {audit.length === 0 ? (
        <p class="muted">No audit entries.</p>
      ) : (
        <div class="table-wrap">
          <table class="list" aria-label="Audit history">
            <thead>
              <tr><th>Time</th><th>Actor</th><th>Action</th><th>Detail</th></tr>
            </thead>
            <tbody>
              {audit.map((e) => (
                <tr key={e.id}>
                  <td title={absTime(e.time)}>{relTime(e.time, now)}</td>
                  <td>{e.actor}</td>
                  <td>{e.action}</td>
                  <td class="detail">{e.detail}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <p><a href={`/audit?mac=${encodeURIComponent(m.mac)}`}>Whole history in the audit log</a></p>
        </div>
      )}

      <RejectDialog macs={rejecting ? [m.mac] : null} onClose={() => setRejecting(false)} />
      <ReleaseDialog m={m} open={dialog === 'release'} onClose={() => setDialog('')} onDone={acted} />
      <RedeployDialog m={m} open={dialog === 'redeploy'} onClose={() => setDialog('')} onDone={acted} />
      <BindDialog m={m} open={dialog === 'bind'} onClose={() => setDialog('')} onDone={acted} />
      <Dialog title={confirm === 'delete' ? 'Delete machine' : 'Rediscover machine'} open={confirm !== ''} onClose={() => setConfirm('')}>
        <p>
          {confirm === 'delete'
            ? `Delete the record of ${m.hostname} (${m.mac})? Its audit history stays. If it boots again it is discovered anew.`
            : `Send ${m.hostname} back to discovery? On its next boot it gets the discovery OS and must be approved again.`}
        </p>
        <div class="actions">
          <button type="button" class={confirm === 'delete' ? 'danger' : ''} disabled={busy} onClick={() => confirm && act(confirm)}>
            {confirm === 'delete' ? 'Delete' : 'Rediscover'}
          </button>
          <button type="button" class="secondary" onClick={() => setConfirm('')}>Cancel</button>
        </div>
      </Dialog>
    </section>
  );
}
