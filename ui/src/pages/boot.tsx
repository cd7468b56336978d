// The boot settings card of the machine page: whether the machine's
// production (or local-disk) boot is an iPXE menu, how long the menu waits
// and what it boots then, and which UEFI iPXE binary the machine gets.
// Admins edit them (PUT /api/v1/machines/{mac}/boot replaces them whole).
import { useRef, useState } from 'preact/hooks';
import { must } from '../api/client';
import type { components } from '../api/schema';
import type { Machine } from '../api/types';
import { Field, KV } from '../components/common';
import { EditorDialog } from '../components/resource';
import { useAdmin, useSession } from '../lib/session';

type BootSettings = components['schemas']['BootSettings'];
type MenuItem = NonNullable<BootSettings['menu']['default']>;
type UEFIBinary = NonNullable<BootSettings['uefi_binary']>;

/** The menu's items in the order iPXE shows them (store.MenuItems). */
export const menuItems: { value: MenuItem; label: string }[] = [
  { value: 'production', label: 'Production boot' },
  { value: 'rediscover', label: 'Rediscover (refresh inventory)' },
  { value: 'local', label: 'Boot from local disk' },
  { value: 'shell', label: 'iPXE shell' },
];

const uefiBinaries: { value: UEFIBinary; label: string }[] = [
  { value: '', label: 'The segment’s choice' },
  { value: 'ipxe.efi', label: 'ipxe.efi (iPXE’s own drivers)' },
  { value: 'snponly.efi', label: 'snponly.efi (the firmware’s network driver)' },
];

/** The appliance's menu timeout when a machine sets none (ipxe.DefaultMenuTimeout). */
const defaultTimeout = 5;

const fields = ['menu.enabled', 'menu.timeout_seconds', 'menu.default', 'uefi_binary'] as const;

function itemLabel(v: string | undefined): string {
  return menuItems.find((i) => i.value === (v || 'production'))?.label ?? v ?? '';
}

/** BootCard shows m's boot settings; onSaved is called after an admin changed them. */
export function BootCard({ m, onSaved }: { m: Machine; onSaved: (m: Machine) => void }) {
  const admin = useAdmin();
  const [editing, setEditing] = useState(false);
  // Answers of an appliance older than the boot settings have no menu.
  const menu = m.menu ?? { enabled: false };
  return (
    <article class="card boot-settings" data-menu={menu.enabled ? 'on' : 'off'}>
      <h2>Boot settings</h2>
      <KV
        items={[
          ['Boot menu', menu.enabled ? 'on' : 'off'],
          ['Menu timeout', menu.timeout_seconds ? `${menu.timeout_seconds} s` : `appliance default (${defaultTimeout} s)`],
          ['Menu default', itemLabel(menu.default)],
          ['UEFI binary', m.uefi_binary ? <span class="mono">{m.uefi_binary}</span> : 'the segment’s choice'],
        ]}
      />
      <p class="muted">
        {m.state === 'rejected'
          ? 'A rejected machine gets no boot, so it has no boot settings to change.'
          : menu.enabled
            ? 'Instead of booting straight into production (or its local disk), the machine shows a menu of production, rediscover, local disk and iPXE shell, and boots the default item when the timeout runs out.'
            : 'The machine boots straight into production (or its local disk).'}
      </p>
      {admin && m.state !== 'rejected' && (
        <div class="actions">
          <button type="button" class="secondary" onClick={() => setEditing(true)}>Edit boot settings…</button>
        </div>
      )}
      {editing && (
        <BootEditor
          m={m}
          onClose={(saved) => {
            setEditing(false);
            if (saved) onSaved(saved);
          }}
        />
      )}
    </article>
  );
}

function BootEditor({ m, onClose }: { m: Machine; onClose: (saved: Machine | null) => void }) {
  const { session } = useSession();
  const menu = m.menu ?? { enabled: false };
  const [enabled, setEnabled] = useState(menu.enabled);
  const [timeout, setTimeoutText] = useState(menu.timeout_seconds ? String(menu.timeout_seconds) : '');
  const [def, setDef] = useState<MenuItem>(menu.default ?? 'production');
  const [uefi, setUefi] = useState<UEFIBinary>((m.uefi_binary ?? '') as UEFIBinary);
  const saved = useRef<Machine | null>(null);

  async function save() {
    // An empty timeout is the appliance's default; anything else goes to
    // the API as typed, so that its refusal lands on the field.
    const t = timeout.trim();
    const body: BootSettings = {
      menu: { enabled, timeout_seconds: t === '' ? 0 : Number(t), default: def },
      uefi_binary: uefi,
    };
    saved.current = await must(session.client.PUT('/api/v1/machines/{mac}/boot', { params: { path: { mac: m.mac } }, body }));
  }

  return (
    <EditorDialog noun="boot settings of" item={{ name: m.hostname }} fields={fields} save={save} onClose={(changed) => onClose(changed ? saved.current : null)}>
      {(errors) => (
        <>
          <Field label="Show the boot menu" name="menu.enabled" error={errors['menu.enabled']}>
            {(p) => <input {...p} type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.currentTarget.checked)} />}
          </Field>
          <Field
            label="Menu timeout (seconds)"
            name="menu.timeout_seconds"
            error={errors['menu.timeout_seconds']}
            hint={`0 to 600; empty for the appliance's default (${defaultTimeout} s).`}
          >
            {(p) => <input {...p} type="number" min={0} max={600} step={1} value={timeout} onInput={(e) => setTimeoutText(e.currentTarget.value)} />}
          </Field>
          <Field label="Default item" name="menu.default" error={errors['menu.default']} hint="Booted when the timeout runs out or the menu is escaped.">
            {(p) => (
              <select {...p} value={def} onChange={(e) => setDef(e.currentTarget.value as MenuItem)}>
                {menuItems.map((i) => <option key={i.value} value={i.value}>{i.label}</option>)}
              </select>
            )}
          </Field>
          <Field label="UEFI iPXE binary" name="uefi_binary" error={errors.uefi_binary} hint="Offered to x86-64 UEFI firmware over TFTP.">
            {(p) => (
              <select {...p} value={uefi} onChange={(e) => setUefi(e.currentTarget.value as UEFIBinary)}>
                {uefiBinaries.map((b) => <option key={b.value} value={b.value}>{b.label}</option>)}
              </select>
            )}
          </Field>
        </>
      )}
    </EditorDialog>
  );
}
