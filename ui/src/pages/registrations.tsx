// A machine's registrations (discovery boot sessions) and the MAC
// conflict they may show: the badge in the list, the banner and the table
// on the machine's page, where an administrator ends the ones that are not
// the machine's.
import { useState } from 'preact/hooks';
import { must } from '../api/client';
import { message } from '../api/problem';
import type { Machine, Registration } from '../api/types';
import { Dialog, Notice } from '../components/common';
import { absTime, relTime } from '../lib/format';
import { activeIPs, endWarning, registrationsOf, shortID, summaryText, tokenState } from '../lib/registrations';
import { useSession } from '../lib/session';

/** ConflictBadge marks a machine with a MAC conflict wherever it is listed. */
export function ConflictBadge({ m }: { m: Machine }) {
  if (!m.mac_conflict) return null;
  const ips = activeIPs(m);
  return (
    <span
      class="badge badge-conflict"
      data-conflict="true"
      title={`MAC conflict: ${registrationsOf(m).filter((r) => r.active).length} active registrations for ${m.mac} (from ${ips.join(', ')}): possible MAC spoofing`}
    >
      ⚠ MAC conflict
    </span>
  );
}

/** ConflictBanner explains a MAC conflict and what to do about it. */
export function ConflictBanner({ m, admin }: { m: Machine; admin: boolean }) {
  if (!m.mac_conflict) return null;
  const ips = activeIPs(m);
  const active = registrationsOf(m).filter((r) => r.active).length;
  return (
    <div class="notice notice-error conflict-banner" role="alert" data-conflict="true">
      <strong>MAC conflict: possible MAC spoofing.</strong> {active} hosts answer for {m.mac}
      {ips.length ? ` (from ${ips.join(', ')})` : ''}: each booted into discovery and registered within the last few minutes.
      One of them may be another host pretending to be this machine.
      {'\n'}
      {admin ? (
        <>
          Approve only with the token shown on the console of the machine you can see: the token decides which registration is
          approved. <a href="#registrations">End the registrations</a> you do not recognise.
        </>
      ) : (
        <>An administrator approves with the token on the console of the machine they can see, and ends the registrations that are not its.</>
      )}
    </div>
  );
}

/** RegistrationsCard lists the registrations, with End for administrators. */
export function RegistrationsCard({ m, admin, now, onChanged }: { m: Machine; admin: boolean; now: number; onChanged: (m: Machine) => void }) {
  const { session } = useSession();
  const regs = registrationsOf(m);
  const [ending, setEnding] = useState<Registration | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');

  async function end() {
    if (!ending) return;
    setBusy(true);
    setError('');
    try {
      const out = await must(
        session.client.DELETE('/api/v1/machines/{mac}/registrations/{id}', { params: { path: { mac: m.mac, id: ending.id } } }),
      );
      setEnding(null);
      onChanged(out);
    } catch (err) {
      setError(message(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <article class={`card wide registrations${m.mac_conflict ? ' conflict' : ''}`} aria-labelledby="registrations">
      <h2 id="registrations">Registrations</h2>
      {regs.length === 0 ? (
        <p class="muted">No live registration: the machine's discovery agent is not running (registrations end when the machine is installed, rejected, rediscovered, released, redeployed or deleted).</p>
      ) : (
        <>
          <p class="sub">
            Each boot into discovery registers anew with its own key and console token.
            {regs.length > 1 && ' More than one: a reboot left one behind, or another host answers for this MAC.'}
          </p>
          <div class="table-wrap">
            <table class="list compact" aria-label="Registrations">
              <thead>
                <tr>
                  <th>Registration</th>
                  <th>Address</th>
                  <th>Registered</th>
                  <th>Last seen</th>
                  <th>Agent</th>
                  <th>Token</th>
                  <th>Hardware</th>
                  {admin && <th><span class="sr-only">Actions</span></th>}
                </tr>
              </thead>
              <tbody>
                {regs.map((r) => {
                  const tok = tokenState(r.token, now);
                  return (
                    <tr key={r.id} data-registration={r.id} data-active={String(r.active)} data-bound={String(r.bound)}>
                      <td class="mono" title={r.id}>
                        {shortID(r.id)}
                        {r.bound && <div class="sub">approved</div>}
                        {r.wiped_at && <div class="sub" title={absTime(r.wiped_at)}>disks wiped</div>}
                      </td>
                      <td class="mono">{r.ip || '—'}</td>
                      <td title={absTime(r.registered_at)}>{relTime(r.registered_at, now)}</td>
                      <td title={absTime(r.last_seen)}>{relTime(r.last_seen, now)}</td>
                      <td>{r.active ? <span class="link-up">active</span> : <span class="link-down">silent</span>}</td>
                      <td data-token={tok.state} class={tok.state === 'valid' ? '' : 'muted'}>{tok.text}</td>
                      <td>{summaryText(r.summary) || <span class="muted">—</span>}</td>
                      {admin && (
                        <td class="row-actions">
                          <button
                            type="button"
                            class="small secondary danger-text"
                            aria-label={`End registration ${shortID(r.id)}`}
                            data-action="end-registration"
                            onClick={() => { setError(''); setEnding(r); }}
                          >
                            End…
                          </button>
                        </td>
                      )}
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        </>
      )}
      <Dialog title="End registration" open={ending !== null} onClose={() => setEnding(null)}>
        {ending && <p>{endWarning(m, ending)}</p>}
        {error && <Notice>{error}</Notice>}
        <div class="actions">
          <button type="button" class="danger" disabled={busy} onClick={end}>{busy ? 'Ending…' : 'End registration'}</button>
          <button type="button" class="secondary" onClick={() => setEnding(null)}>Cancel</button>
        </div>
      </Dialog>
    </article>
  );
}
