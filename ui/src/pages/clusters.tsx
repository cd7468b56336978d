// Clusters: create, edit, delete (a cluster that a machine belongs to
// cannot be deleted; the API's 409 says so and is shown as it is).
import { useEffect, useState } from 'preact/hooks';
import { must } from '../api/client';
import { ApiError, fieldErrors, message } from '../api/problem';
import type { Cluster, Profile } from '../api/types';
import { Dialog, Field, Notice } from '../components/common';
import { absTime } from '../lib/format';
import { useTitle } from '../lib/hooks';
import { useAdmin, useSession } from '../lib/session';

const fields = ['name', 'description', 'default_profile'] as const;

export function ClustersPage() {
  useTitle('Clusters');
  const { session } = useSession();
  const admin = useAdmin();
  const [items, setItems] = useState<Cluster[]>([]);
  const [profiles, setProfiles] = useState<Profile[]>([]);
  const [error, setError] = useState('');
  const [editing, setEditing] = useState<Cluster | 'new' | null>(null);
  const [deleting, setDeleting] = useState<Cluster | null>(null);
  const [seq, setSeq] = useState(0);

  useEffect(() => {
    (async () => {
      try {
        const [cs, ps] = await Promise.all([must(session.client.GET('/api/v1/clusters')), must(session.client.GET('/api/v1/profiles'))]);
        setItems(cs ?? []);
        setProfiles(ps ?? []);
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
        <h1>Clusters</h1>
        {admin && <button type="button" onClick={() => setEditing('new')}>New cluster…</button>}
      </div>
      <p class="muted">Every approved machine belongs to a cluster; its default profile is used when an approval names none.</p>
      {error && <Notice>{error}</Notice>}
      <div class="table-wrap">
        <table class="list" aria-label="Clusters">
          <thead>
            <tr><th>Name</th><th>Description</th><th>Default profile</th><th>Updated</th>{admin && <th><span class="sr-only">Actions</span></th>}</tr>
          </thead>
          <tbody>
            {items.map((c) => (
              <tr key={c.name} data-name={c.name}>
                <td><a href={`/?cluster=${encodeURIComponent(c.name)}`}>{c.name}</a></td>
                <td>{c.description}</td>
                <td>{c.default_profile || <span class="muted">none</span>}</td>
                <td>{absTime(c.updated_at)}</td>
                {admin && (
                  <td class="row-actions">
                    <button type="button" class="small secondary" onClick={() => setEditing(c)} aria-label={`Edit ${c.name}`}>Edit</button>
                    <button type="button" class="small secondary danger-text" onClick={() => setDeleting(c)} aria-label={`Delete ${c.name}`}>Delete</button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
        {items.length === 0 && !error && <p class="empty">No cluster yet. Approving a machine needs one.</p>}
      </div>
      {editing && (
        <ClusterEditor cluster={editing === 'new' ? null : editing} profiles={profiles} onClose={(changed) => { setEditing(null); if (changed) reload(); }} />
      )}
      <DeleteDialog
        what="cluster"
        name={deleting?.name ?? ''}
        open={deleting !== null}
        onDelete={() => must(session.client.DELETE('/api/v1/clusters/{name}', { params: { path: { name: deleting!.name } } }))}
        onClose={(changed) => { setDeleting(null); if (changed) reload(); }}
      />
    </section>
  );
}

function ClusterEditor({ cluster, profiles, onClose }: { cluster: Cluster | null; profiles: Profile[]; onClose: (changed: boolean) => void }) {
  const { session } = useSession();
  const [name, setName] = useState(cluster?.name ?? '');
  const [description, setDescription] = useState(cluster?.description ?? '');
  const [defaultProfile, setDefaultProfile] = useState(cluster?.default_profile ?? '');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [general, setGeneral] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setErrors({});
    setGeneral([]);
    try {
      const body = { description, default_profile: defaultProfile };
      if (cluster) {
        await must(session.client.PUT('/api/v1/clusters/{name}', { params: { path: { name: cluster.name } }, body }));
      } else {
        await must(session.client.POST('/api/v1/clusters', { body: { name: name.trim(), ...body } }));
      }
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
    <Dialog title={cluster ? `Edit cluster ${cluster.name}` : 'New cluster'} open onClose={() => onClose(false)}>
      <form onSubmit={submit}>
        {general.length > 0 && <Notice>{general.join(' ')}</Notice>}
        {!cluster && (
          <Field label="Name" name="name" error={errors.name} hint="Letters, digits, '.', '_' and '-'.">
            {(p) => <input {...p} value={name} onInput={(e) => setName(e.currentTarget.value)} autoFocus />}
          </Field>
        )}
        <Field label="Description" name="description" error={errors.description}>
          {(p) => <input {...p} value={description} onInput={(e) => setDescription(e.currentTarget.value)} />}
        </Field>
        <Field label="Default profile" name="default_profile" error={errors.default_profile}>
          {(p) => (
            <select {...p} value={defaultProfile} onChange={(e) => setDefaultProfile(e.currentTarget.value)}>
              <option value="">none</option>
              {profiles.map((pr) => <option key={pr.name} value={pr.name}>{pr.name} ({pr.kind})</option>)}
            </select>
          )}
        </Field>
        <div class="actions">
          <button type="submit" disabled={busy}>{cluster ? 'Save' : 'Create'}</button>
          <button type="button" class="secondary" onClick={() => onClose(false)}>Cancel</button>
        </div>
      </form>
    </Dialog>
  );
}

/** DeleteDialog confirms a deletion and shows the API's refusal (409 in use). */
export function DeleteDialog({ what, name, open, onDelete, onClose }: { what: string; name: string; open: boolean; onDelete: () => Promise<unknown>; onClose: (changed: boolean) => void }) {
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  useEffect(() => setError(''), [open, name]);
  async function del() {
    setBusy(true);
    setError('');
    try {
      await onDelete();
      onClose(true);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 409 ? `Cannot delete: ${err.message}` : message(err));
    } finally {
      setBusy(false);
    }
  }
  return (
    <Dialog title={`Delete ${what} ${name}`} open={open} onClose={() => onClose(false)}>
      <p>Delete the {what} {name}? The API refuses while a machine{what === 'profile' ? ' or cluster' : ''} uses it.</p>
      {error && <Notice>{error}</Notice>}
      <div class="actions">
        <button type="button" class="danger" disabled={busy} onClick={del}>Delete</button>
        <button type="button" class="secondary" onClick={() => onClose(false)}>Cancel</button>
      </div>
    </Dialog>
  );
}
