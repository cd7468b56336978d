// The power card of the machine page: the machine's BMC (never its
// password), the power state the appliance last read from it (refreshed
// here every 15 s from the appliance's reading, and on demand from the
// BMC itself), power on, off and cycle, the next boot from the network,
// password rotation, and entering a BMC by hand. A BMC's refusal is shown
// in its own words.
import { useEffect, useRef, useState } from 'preact/hooks';
import { must } from '../api/client';
import { message } from '../api/problem';
import type { components } from '../api/schema';
import type { Machine } from '../api/types';
import { Dialog, Field, KV, Notice } from '../components/common';
import { EditorDialog } from '../components/resource';
import { absTime, relTime } from '../lib/format';
import { asInventory } from '../lib/inventory';
import { useSession } from '../lib/session';

type PowerStatus = components['schemas']['PowerStatus'];
type BMCRequest = components['schemas']['BMCRequest'];
type Act = 'on' | 'off' | 'cycle' | 'pxe' | 'rotate' | 'forget';

/** How often the card re-reads the appliance's power reading. */
export const powerRefreshMs = 15000;

const confirmText: Record<Act, string> = {
  on: 'Power on',
  off: 'Power off (hard: the operating system is not asked)',
  cycle: 'Power cycle (hard power-off, then on)',
  pxe: 'Make the next boot (only the next) a network boot',
  rotate: 'Give the appliance’s BMC user a new password (set on the BMC, checked, then stored)',
  forget: 'Forget this BMC and its credential (the user stays on the BMC)',
};

export function PowerCard({ m, admin, now, onChanged }: { m: Machine; admin: boolean; now: number; onChanged: (m: Machine) => void }) {
  const { session } = useSession();
  const [power, setPower] = useState<PowerStatus | null>(null);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [confirm, setConfirm] = useState<Act | null>(null);
  const [editing, setEditing] = useState(false);
  const usable = !!m.bmc?.credential;

  async function read(refresh: boolean, signal?: AbortSignal) {
    const got = await must(
      session.client.GET('/api/v1/machines/{mac}/power', { params: { path: { mac: m.mac }, query: refresh ? { refresh: true } : {} }, signal }),
    );
    setPower(got);
  }

  useEffect(() => {
    if (!usable) return;
    const ac = new AbortController();
    const load = () => read(false, ac.signal).catch(() => {});
    load();
    const t = setInterval(load, powerRefreshMs);
    return () => {
      ac.abort();
      clearInterval(t);
    };
  }, [m.mac, usable, m.revision]);

  async function act(a: Act) {
    setBusy(true);
    setError('');
    const path = { params: { path: { mac: m.mac } } };
    try {
      if (a === 'on' || a === 'off' || a === 'cycle') {
        setPower(await must(session.client.POST('/api/v1/machines/{mac}/power', { ...path, body: { action: a } })));
      } else if (a === 'pxe') {
        setPower(await must(session.client.POST('/api/v1/machines/{mac}/pxe-next', path)));
      } else if (a === 'rotate') {
        onChanged(await must(session.client.POST('/api/v1/machines/{mac}/bmc/rotate', path)));
      } else {
        onChanged(await must(session.client.DELETE('/api/v1/machines/{mac}/bmc', path)));
        setPower(null);
      }
      setConfirm(null);
    } catch (err) {
      setError(message(err));
      setConfirm(null);
      // A refusal is also recorded with the power reading.
      if (a !== 'forget') read(false).catch(() => {});
    } finally {
      setBusy(false);
    }
  }

  const b = m.bmc;
  const reported = asInventory(m.inventory)?.bmc;
  const lastError = power?.error && power.error_at && (!power.checked_at || power.error_at > power.checked_at) ? power : null;
  return (
    <article class="card power" data-power={power?.state ?? 'unknown'}>
      <h2>Power</h2>
      {!b ? (
        <p class="muted">
          No BMC credential.
          {reported?.address
            ? ` The discovery OS saw the BMC at ${reported.address} (${bmcKind(reported)}).`
            : reported
              ? ` The discovery OS saw the BMC (${bmcKind(reported)}), without a LAN address.`
              : ''}{' '}
          Approve it with a BMC user, or enter its BMC by hand.
        </p>
      ) : (
        <KV
          items={[
            ['State', <strong class={`power-${power?.state ?? 'unknown'}`} data-testid="power-state">{power?.state ?? 'unknown'}</strong>],
            ['Read', power?.checked_at ? <span title={absTime(power.checked_at)}>{relTime(power.checked_at, now)}</span> : 'not yet'],
            ['BMC', <span class="mono">{`${b.protocol} ${b.address}${b.port ? `:${b.port}` : ''}`}</span>],
            ['User', b.username],
            ['Password', b.credential ? 'stored, encrypted (never shown)' : 'none'],
            ['Source', b.source === 'agent' ? 'created by the discovery OS' : 'entered by hand'],
            ['Rotated', b.rotated_at ? absTime(b.rotated_at) : undefined],
          ]}
        />
      )}
      {lastError && (
        <Notice>
          The BMC’s last error ({relTime(lastError.error_at, now)}): <span class="bmc-error">{lastError.error}</span>
        </Notice>
      )}
      {error && <Notice>{error}</Notice>}
      {usable && (
        <div class="actions" role="group" aria-label="Power actions">
          <button type="button" class="secondary" disabled={busy} onClick={() => read(true).catch((e) => setError(message(e)))}>Refresh</button>
          {admin && (
            <>
              <button type="button" disabled={busy} onClick={() => setConfirm('on')}>Power on</button>
              <button type="button" class="secondary danger-text" disabled={busy} onClick={() => setConfirm('off')}>Power off…</button>
              <button type="button" class="secondary" disabled={busy} onClick={() => setConfirm('cycle')}>Power cycle…</button>
              <button type="button" class="secondary" disabled={busy} onClick={() => setConfirm('pxe')}>Next boot: network…</button>
              <button type="button" class="secondary" disabled={busy} onClick={() => setConfirm('rotate')}>Rotate password…</button>
            </>
          )}
        </div>
      )}
      {admin && (
        <div class="actions">
          <button type="button" class="secondary" onClick={() => setEditing(true)}>{b ? 'Edit BMC…' : 'Enter BMC…'}</button>
          {b && <button type="button" class="secondary danger-text" onClick={() => setConfirm('forget')}>Forget BMC…</button>}
        </div>
      )}
      <Dialog title={confirm ? confirmText[confirm] : ''} open={confirm !== null} onClose={() => setConfirm(null)}>
        <p>{confirm && `${confirmText[confirm]}: ${m.hostname} (${m.mac})?`}</p>
        <div class="actions">
          <button type="button" disabled={busy} onClick={() => confirm && act(confirm)}>Confirm</button>
          <button type="button" class="secondary" onClick={() => setConfirm(null)}>Cancel</button>
        </div>
      </Dialog>
      {editing && (
        <BMCEditor
          m={m}
          address={b?.address ?? reported?.address ?? ''}
          onClose={(saved) => {
            setEditing(false);
            if (saved) onChanged(saved);
          }}
        />
      )}
    </article>
  );
}

/** bmcKind names an inventoried BMC: "IPMI, KCS", "Redfish". */
function bmcKind(b: { interface?: string; type?: string }): string {
  const i = b.interface === 'redfish' ? 'Redfish' : (b.interface ?? '').toUpperCase();
  return [i, b.type].filter(Boolean).join(', ');
}

const bmcFields = ['protocol', 'address', 'port', 'username', 'password'] as const;

function BMCEditor({ m, address, onClose }: { m: Machine; address: string; onClose: (saved: Machine | null) => void }) {
  const { session } = useSession();
  const [protocol, setProtocol] = useState<BMCRequest['protocol']>((m.bmc?.protocol ?? 'ipmi') as BMCRequest['protocol']);
  const [addr, setAddr] = useState(address);
  const [port, setPort] = useState(m.bmc?.port ? String(m.bmc.port) : '');
  const [username, setUsername] = useState(m.bmc?.username ?? '');
  const [password, setPassword] = useState('');
  const saved = useRef<Machine | null>(null);

  async function save() {
    const body: BMCRequest = { protocol, address: addr.trim(), username: username.trim(), password, ...(port.trim() ? { port: Number(port) } : {}) };
    saved.current = await must(session.client.PUT('/api/v1/machines/{mac}/bmc', { params: { path: { mac: m.mac } }, body }));
  }

  return (
    <EditorDialog noun="BMC of" item={{ name: m.hostname }} fields={bmcFields} save={save} onClose={(changed) => onClose(changed ? saved.current : null)}>
      {(errors) => (
        <>
          <Field label="Protocol" name="protocol" error={errors.protocol}>
            {(p) => (
              <select {...p} value={protocol} onChange={(e) => setProtocol(e.currentTarget.value as BMCRequest['protocol'])}>
                <option value="ipmi">IPMI (LAN, port 623)</option>
                <option value="redfish">Redfish (HTTPS, port 443)</option>
              </select>
            )}
          </Field>
          <Field label="Address" name="address" error={errors.address} hint="The BMC's IP address or host name.">
            {(p) => <input {...p} required value={addr} onInput={(e) => setAddr(e.currentTarget.value)} />}
          </Field>
          <Field label="Port" name="port" error={errors.port} hint="Empty for the protocol's default.">
            {(p) => <input {...p} type="number" min={0} max={65535} value={port} onInput={(e) => setPort(e.currentTarget.value)} />}
          </Field>
          <Field label="User" name="username" error={errors.username}>
            {(p) => <input {...p} required autocomplete="off" value={username} onInput={(e) => setUsername(e.currentTarget.value)} />}
          </Field>
          <Field label="Password" name="password" error={errors.password} hint="Stored encrypted; never shown again.">
            {(p) => <input {...p} required type="password" autocomplete="new-password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} />}
          </Field>
        </>
      )}
    </EditorDialog>
  );
}
