// Clusters: create, edit, delete (a cluster that a machine belongs to
// cannot be deleted; the API's 409 says so and is shown as it is).
import { useState } from 'preact/hooks';
import { must } from '../api/client';
import type { Cluster, Profile } from '../api/types';
import { Field } from '../components/common';
import { EditorDialog, ResourcePage } from '../components/resource';
import { absTime } from '../lib/format';
import { useLoad } from '../lib/hooks';
import { useSession } from '../lib/session';

const fields = ['name', 'description', 'default_profile', 'bmc_user'] as const;

export function ClustersPage() {
  const { session } = useSession();
  // The editor offers the profiles as default, so both lists are loaded.
  const { data, error, reload } = useLoad(
    async () => {
      const [cs, ps] = await Promise.all([must(session.client.GET('/api/v1/clusters')), must(session.client.GET('/api/v1/profiles'))]);
      return { clusters: cs ?? [], profiles: ps ?? [] };
    },
    { clusters: [] as Cluster[], profiles: [] as Profile[] },
  );

  return (
    <ResourcePage<Cluster>
      title="Clusters"
      noun="cluster"
      intro="Every approved machine belongs to a cluster; its default profile is used when an approval names none."
      items={data.clusters}
      error={error}
      reload={reload}
      columns={['Name', 'Description', 'Default profile', 'Updated']}
      row={(c) => (
        <>
          <td><a href={`/?cluster=${encodeURIComponent(c.name)}`}>{c.name}</a></td>
          <td>{c.description}</td>
          <td>{c.default_profile || <span class="muted">none</span>}</td>
          <td>{absTime(c.updated_at)}</td>
        </>
      )}
      empty="No cluster yet. Approving a machine needs one."
      usedBy="a machine"
      editor={(c, onClose) => <ClusterEditor cluster={c} profiles={data.profiles} onClose={onClose} />}
      remove={(name) => must(session.client.DELETE('/api/v1/clusters/{name}', { params: { path: { name } } }))}
    />
  );
}

function ClusterEditor({ cluster, profiles, onClose }: { cluster: Cluster | null; profiles: Profile[]; onClose: (changed: boolean) => void }) {
  const { session } = useSession();
  const [name, setName] = useState(cluster?.name ?? '');
  const [description, setDescription] = useState(cluster?.description ?? '');
  const [defaultProfile, setDefaultProfile] = useState(cluster?.default_profile ?? '');
  const [bmcUser, setBMCUser] = useState(cluster?.bmc_user ?? false);

  async function save() {
    const body = { description, default_profile: defaultProfile, bmc_user: bmcUser };
    if (cluster) {
      await must(session.client.PUT('/api/v1/clusters/{name}', { params: { path: { name: cluster.name } }, body }));
    } else {
      await must(session.client.POST('/api/v1/clusters', { body: { name: name.trim(), ...body } }));
    }
  }

  return (
    <EditorDialog noun="cluster" item={cluster} fields={fields} save={save} onClose={onClose}>
      {(errors) => (
        <>
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
          <Field
            label="Create a BMC user at approval"
            name="bmc_user"
            error={errors.bmc_user}
            hint="The discovery OS of every machine approved into this cluster creates a BMC user for the appliance in band, so that it can power-cycle the machine."
          >
            {(p) => <input {...p} type="checkbox" checked={bmcUser} onChange={(e) => setBMCUser(e.currentTarget.checked)} />}
          </Field>
        </>
      )}
    </EditorDialog>
  );
}
