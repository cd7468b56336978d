// Profiles: the production workflows (netboot or image).
import { useState } from 'preact/hooks';
import { must } from '../api/client';
import type { Profile } from '../api/types';
import { Field } from '../components/common';
import { EditorDialog, ResourcePage } from '../components/resource';
import { useLoad } from '../lib/hooks';
import { useSession } from '../lib/session';

const fields = ['name', 'kind', 'description', 'kernel', 'initrd', 'cmdline', 'script', 'image_url', 'image_sha256'] as const;
type Kind = 'netboot' | 'image';

export function ProfilesPage() {
  const { session } = useSession();
  const { data, error, reload } = useLoad(async () => (await must(session.client.GET('/api/v1/profiles'))) ?? [], [] as Profile[]);

  return (
    <ResourcePage<Profile>
      title="Profiles"
      noun="profile"
      intro={
        'A netboot profile gives the machine a production script on every PXE boot; an image profile has the agent write an ' +
        'image to the chosen disk, then the machine boots from it.'
      }
      items={data}
      error={error}
      reload={reload}
      columns={['Name', 'Kind', 'Boots', 'Description']}
      row={(p) => (
        <>
          <td>{p.name}</td>
          <td>{p.kind}</td>
          <td class="mono small">{p.kind === 'image' ? p.image_url : p.script ? 'own iPXE script' : p.kernel}</td>
          <td>{p.description}</td>
        </>
      )}
      empty="No profile yet."
      usedBy="a machine or cluster"
      editor={(p, onClose) => <ProfileEditor profile={p} onClose={onClose} />}
      remove={(name) => must(session.client.DELETE('/api/v1/profiles/{name}', { params: { path: { name } } }))}
    />
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
  const upd = (k: keyof typeof v) => (e: { currentTarget: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement }) =>
    setV({ ...v, [k]: e.currentTarget.value });

  async function save() {
    // Only the fields of the chosen kind are sent: the API refuses the others.
    const body =
      v.kind === 'image'
        ? { kind: v.kind, description: v.description, image_url: v.image_url.trim(), image_sha256: v.image_sha256.trim() }
        : { kind: v.kind, description: v.description, kernel: v.kernel.trim(), initrd: v.initrd.trim(), cmdline: v.cmdline, script: v.script };
    if (profile) await must(session.client.PUT('/api/v1/profiles/{name}', { params: { path: { name: profile.name } }, body }));
    else await must(session.client.POST('/api/v1/profiles', { body: { name: v.name.trim(), ...body } }));
  }

  return (
    <EditorDialog noun="profile" item={profile} fields={fields} save={save} onClose={onClose}>
      {(errors) => (
        <>
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
        </>
      )}
    </EditorDialog>
  );
}
