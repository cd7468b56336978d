// Profiles: the production workflows (netboot or image).
import { useEffect, useState } from 'preact/hooks';
import { must } from '../api/client';
import { ApiError, fieldErrors, message } from '../api/problem';
import type { Profile } from '../api/types';
import { Dialog, Field, Notice } from '../components/common';
import { useTitle } from '../lib/hooks';
import { useAdmin, useSession } from '../lib/session';
import { DeleteDialog } from './clusters';

const fields = ['name', 'kind', 'description', 'kernel', 'initrd', 'cmdline', 'script', 'image_url', 'image_sha256'] as const;
type Kind = 'netboot' | 'image';

export function ProfilesPage() {
  useTitle('Profiles');
  const { session } = useSession();
  const admin = useAdmin();
  const [items, setItems] = useState<Profile[]>([]);
  const [error, setError] = useState('');
  const [editing, setEditing] = useState<Profile | 'new' | null>(null);
  const [deleting, setDeleting] = useState<Profile | null>(null);
  const [seq, setSeq] = useState(0);

  useEffect(() => {
    (async () => {
      try {
        setItems((await must(session.client.GET('/api/v1/profiles'))) ?? []);
        setError('');
      } catch (err) {
        setError(message(err));
      }
    })();
  }, [seq]);
  const reload = () => setSeq((s) => s + 1);

  return (
    <section>
      <div class="page-head">
        <h1>Profiles</h1>
        {admin && <button type="button" onClick={() => setEditing('new')}>New profile…</button>}
      </div>
      <p class="muted">
        A netboot profile gives the machine a production script on every PXE boot; an image profile has the agent write an
        image to the chosen disk, then the machine boots from it.
      </p>
      {error && <Notice>{error}</Notice>}
      <div class="table-wrap">
        <table class="list" aria-label="Profiles">
          <thead>
            <tr><th>Name</th><th>Kind</th><th>Boots</th><th>Description</th>{admin && <th><span class="sr-only">Actions</span></th>}</tr>
          </thead>
          <tbody>
            {items.map((p) => (
              <tr key={p.name} data-name={p.name}>
                <td>{p.name}</td>
                <td>{p.kind}</td>
                <td class="mono small">{p.kind === 'image' ? p.image_url : p.script ? 'own iPXE script' : p.kernel}</td>
                <td>{p.description}</td>
                {admin && (
                  <td class="row-actions">
                    <button type="button" class="small secondary" onClick={() => setEditing(p)} aria-label={`Edit ${p.name}`}>Edit</button>
                    <button type="button" class="small secondary danger-text" onClick={() => setDeleting(p)} aria-label={`Delete ${p.name}`}>Delete</button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
        {items.length === 0 && !error && <p class="empty">No profile yet.</p>}
      </div>
      {editing && <ProfileEditor profile={editing === 'new' ? null : editing} onClose={(c) => { setEditing(null); if (c) reload(); }} />}
      <DeleteDialog
        what="profile"
        name={deleting?.name ?? ''}
        open={deleting !== null}
        onDelete={() => must(session.client.DELETE('/api/v1/profiles/{name}', { params: { path: { name: deleting!.name } } }))}
        onClose={(changed) => { setDeleting(null); if (changed) reload(); }}
      />
    </section>
  );
}

function ProfileEditor({ profile, onClose }: { profile: Profile | null; onClose: (changed: boolean) => void }) {
  const { session } = useSession();
  const [v, setV] = useState({
    name: profile?.name ?? '',
    kind: (profile?.kind ?? 'netboot') as Kind,
    description: profile?.description ?? '',
    kernel: profile?.kernel ?? '',
    initrd: profile?.initrd ?? '',
    cmdline: profile?.cmdline ?? '',
    script: profile?.script ?? '',
    image_url: profile?.image_url ?? '',
    image_sha256: profile?.image_sha256 ?? '',
  });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [general, setGeneral] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const upd = (k: keyof typeof v) => (e: { currentTarget: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement }) =>
    setV({ ...v, [k]: e.currentTarget.value });

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setErrors({});
    setGeneral([]);
    // Only the fields of the chosen kind are sent: the API refuses the others.
    const body =
      v.kind === 'image'
        ? { kind: v.kind, description: v.description, image_url: v.image_url.trim(), image_sha256: v.image_sha256.trim() }
        : { kind: v.kind, description: v.description, kernel: v.kernel.trim(), initrd: v.initrd.trim(), cmdline: v.cmdline, script: v.script };
    try {
      if (profile) await must(session.client.PUT('/api/v1/profiles/{name}', { params: { path: { name: profile.name } }, body }));
      else await must(session.client.POST('/api/v1/profiles', { body: { name: v.name.trim(), ...body } }));
      onClose(true);
    } catch (err) {
      if (err instanceof ApiError) {
        const r = fieldErrors(err.problem, fields);
        setErrors(r.byField);
        setGeneral(r.general);
      } else setGeneral([message(err)]);
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog title={profile ? `Edit profile ${profile.name}` : 'New profile'} open onClose={() => onClose(false)}>
      <form onSubmit={submit}>
        {general.length > 0 && <Notice>{general.join(' ')}</Notice>}
        {!profile && (
          <Field label="Name" name="name" error={errors.name}>
            {(p) => <input {...p} value={v.name} onInput={upd('name')} autoFocus />}
          </Field>
        )}
        <Field label="Kind" name="kind" error={errors.kind}>
          {(p) => (
            <select {...p} value={v.kind} onChange={upd('kind')}>
              <option value="netboot">netboot</option>
              <option value="image">image</option>
            </select>
          )}
        </Field>
        <Field label="Description" name="description" error={errors.description}>
          {(p) => <input {...p} value={v.description} onInput={upd('description')} />}
        </Field>
        {v.kind === 'netboot' ? (
          <>
            <Field label="Kernel URL" name="kernel" error={errors.kernel} hint="http(s) URL or a path on the appliance">
              {(p) => <input {...p} class="mono" value={v.kernel} onInput={upd('kernel')} />}
            </Field>
            <Field label="Initrd URL" name="initrd" error={errors.initrd}>
              {(p) => <input {...p} class="mono" value={v.initrd} onInput={upd('initrd')} />}
            </Field>
            <Field label="Kernel command line" name="cmdline" error={errors.cmdline}>
              {(p) => <input {...p} class="mono" value={v.cmdline} onInput={upd('cmdline')} />}
            </Field>
            <Field label="Whole iPXE script (instead of the above)" name="script" error={errors.script}>
              {(p) => <textarea {...p} class="mono" rows={4} value={v.script} onInput={upd('script')} />}
            </Field>
          </>
        ) : (
          <>
            <Field label="Image URL" name="image_url" error={errors.image_url} hint="raw, .gz, .zst or .xz">
              {(p) => <input {...p} class="mono" value={v.image_url} onInput={upd('image_url')} />}
            </Field>
            <Field label="Image SHA-256" name="image_sha256" error={errors.image_sha256}>
              {(p) => <input {...p} class="mono" value={v.image_sha256} onInput={upd('image_sha256')} />}
            </Field>
          </>
        )}
        <div class="actions">
          <button type="submit" disabled={busy}>{profile ? 'Save' : 'Create'}</button>
          <button type="button" class="secondary" onClick={() => onClose(false)}>Cancel</button>
        </div>
      </form>
    </Dialog>
  );
}
