// The review and settings steps of the approval wizard (approve.tsx).
import { Field } from '../components/common';
import { Inventory } from './inventory';
import type { Cluster, Machine, Profile, Segment } from '../api/types';
import { absTime, bytes } from '../lib/format';
import { diskID, type Disk, type Inventory as Inv } from '../lib/inventory';
import { matchedRegistration, registrationsOf, shortID, summaryText } from '../lib/registrations';
import type { ApprovalForm, Errors } from '../lib/wizard';

/** ReviewStep shows what the machine is, so the operator can recognise it. */
export function ReviewStep({ m, inv, matched }: { m: Machine; inv: Inv | undefined; matched?: string }) {
  const disks = inv?.disks ?? [];
  const hit = matchedRegistration(m, matched);
  const several = registrationsOf(m).length > 1;
  return (
    <div class="review">
      <p>The token is right. Check that this is the machine you expect:</p>
      {hit && (
        <div class={`notice ${hit.differs ? 'notice-error' : 'notice-info'} matched-registration`} role="status" data-registration={hit.reg.id}>
          The token matches registration <span class="mono">{shortID(hit.reg.id)}</span> from{' '}
          <span class="mono">{hit.reg.ip || 'an unknown address'}</span>, registered {absTime(hit.reg.registered_at)}
          {hit.reg.summary && summaryText(hit.reg.summary) ? <>: {summaryText(hit.reg.summary)}</> : null}.
          {several && ' Approval binds the machine to this registration only; the others can neither fetch the decision nor report.'}
          {hit.differs && (
            <>
              {'\n'}
              <strong>The hardware below is another registration's report, not this one's.</strong> Approval uses the matched
              registration's inventory; end the registrations you do not recognise on the machine's page and review again.
            </>
          )}
        </div>
      )}
      <dl class="kv">
        <div><dt>Machine</dt><dd>{[inv?.system?.vendor, inv?.system?.product].filter(Boolean).join(' ') || 'unknown'}{inv?.system?.serial && `, serial ${inv.system.serial}`}</dd></div>
        <div><dt>CPU</dt><dd>{inv?.cpu?.model || '—'}{inv?.cpu?.cores ? ` · ${inv.cpu.cores} cores, ${inv.cpu.threads} threads` : ''}</dd></div>
        <div><dt>Memory</dt><dd>{bytes(inv?.memory?.total_bytes)}</dd></div>
        <div><dt>Disks</dt><dd>{disks.length ? disks.map((d) => `${d.name} ${bytes(d.size_bytes)}${d.model ? ` ${d.model}` : ''}`).join(', ') : 'none'}</dd></div>
        <div><dt>Network</dt><dd>{(inv?.nics ?? []).map((n) => `${n.name} ${n.mac}${n.link ? ' (link up)' : ''}`).join(', ') || '—'}</dd></div>
        <div><dt>GPUs</dt><dd>{(inv?.gpus ?? []).length || 'none'}</dd></div>
        <div><dt>BMC</dt><dd>{inv?.bmc ? `${inv.bmc.interface}${inv.bmc.address ? ` at ${inv.bmc.address}` : ''}` : 'none found'}</dd></div>
        <div><dt>Segment</dt><dd>{m.segment || '—'}{m.ip && `, ${m.ip}`}</dd></div>
      </dl>
      {inv && (
      <details>
        <summary>The whole inventory</summary>
        <Inventory inv={inv} />
      </details>
    )}
    </div>
  );
}

interface SettingsProps {
  form: ApprovalForm;
  set: <K extends keyof ApprovalForm>(k: K, v: ApprovalForm[K]) => void;
  errors: Errors;
  disks: Disk[];
  profiles: Profile[];
  cluster: Cluster | undefined;
  segment: Segment | undefined;
}

/** SettingsStep edits host name, profile, disk, SSH keys and network. */
export function SettingsStep({ form, set, errors, disks, profiles, cluster, segment }: SettingsProps) {
  return (
    <>
    <>
      <Field label="Host name" name="hostname" error={errors.hostname} hint="RFC 1123: letters, digits and '-', dot-separated; unique.">
        {(p) => <input {...p} name="hostname" autoComplete="off" value={form.hostname} onInput={(e) => set('hostname', e.currentTarget.value)} />}
      </Field>
      <Field label="Profile" name="profile" error={errors.profile}>
        {(p) => (
          <select {...p} name="profile" value={form.profile} onChange={(e) => set('profile', e.currentTarget.value)}>
            <option value="">{cluster?.default_profile ? `cluster default (${cluster.default_profile})` : 'choose a profile…'}</option>
            {profiles.map((pr) => (
              <option key={pr.name} value={pr.name}>{pr.name} ({pr.kind})</option>
            ))}
          </select>
        )}
      </Field>
      <fieldset class={`field${errors.disk ? ' has-error' : ''}`} data-field="disk">
        <legend>Target disk</legend>
        {disks.length === 0 && <p class="muted">The machine reported no disk.</p>}
        {disks.map((d) => {
          const id = diskID(d);
          return (
            <label key={id} class="radio">
              <input type="radio" name="disk" value={id} checked={form.disk === id} disabled={d.read_only} onChange={() => set('disk', id)} />
              <span class="mono">{d.path || d.name}</span> {bytes(d.size_bytes)} {d.model}
              {d.removable && <span class="muted"> removable</span>}
              {d.read_only && <span class="muted"> read-only</span>}
              <span class="sub mono">{d.by_path}</span>
            </label>
          );
        })}
        <div class="hint">The default is the first fixed disk by its stable path. Only image profiles write to it.</div>
        {errors.disk && <div class="field-error" data-error-for="disk">{errors.disk}</div>}
      </fieldset>
      <Field label="SSH keys" name="ssh_keys" error={errors.ssh_keys} hint="authorized_keys lines, one per line.">
        {(p) => <textarea {...p} name="ssh_keys" rows={3} class="mono" value={form.sshKeys} onInput={(e) => set('sshKeys', e.currentTarget.value)} />}
      </Field>
      <fieldset class={`field${errors['network.mode'] ? ' has-error' : ''}`} data-field="network.mode">
        <legend>Network</legend>
        <label class="radio">
          <input type="radio" name="mode" value="dhcp" checked={form.mode === 'dhcp'} onChange={() => set('mode', 'dhcp')} /> DHCP
        </label>
        <label class="radio">
          <input type="radio" name="mode" value="static" checked={form.mode === 'static'} onChange={() => set('mode', 'static')} /> Static address
        </label>
        {errors['network.mode'] && <div class="field-error" data-error-for="network.mode">{errors['network.mode']}</div>}
      </fieldset>
      {form.mode === 'static' && (
        <div class="row">
          <Field label="Address/prefix" name="network.address" error={errors['network.address']} hint={segment ? `inside ${segment.subnet}` : undefined}>
            {(p) => <input {...p} name="address" class="mono" placeholder="10.77.0.50/24" value={form.address} onInput={(e) => set('address', e.currentTarget.value)} />}
          </Field>
          <Field label="Gateway" name="network.gateway" error={errors['network.gateway']} hint={segment?.router ? `default ${segment.router}` : undefined}>
            {(p) => <input {...p} name="gateway" class="mono" value={form.gateway} onInput={(e) => set('gateway', e.currentTarget.value)} />}
          </Field>
        </div>
      )}
      <Field label="DNS servers" name="network.dns" error={errors['network.dns']} hint={segment?.dns?.length ? `default ${segment.dns.join(', ')}` : 'space- or comma-separated; optional'}>
        {(p) => <input {...p} name="dns" class="mono" value={form.dns} onInput={(e) => set('dns', e.currentTarget.value)} />}
      </Field>
      <Field
        label="Create a BMC user for the appliance"
        name="bmc_user"
        error={errors.bmc_user}
        hint={cluster?.bmc_user ? 'The cluster asks for one at every approval.' : 'The discovery OS creates it in band (IPMI), so that the appliance can power-cycle the machine.'}
      >
        {(p) => <input {...p} type="checkbox" name="bmc_user" checked={!!form.bmcUser || !!cluster?.bmc_user} disabled={!!cluster?.bmc_user} onChange={(e) => set('bmcUser', e.currentTarget.checked)} />}
      </Field>
    </>
    </>
  );
}
