// Profiles: the production workflows (netboot or image).
import { useEffect, useState } from 'preact/hooks';
import { must } from '../api/client';
import { message } from '../api/problem';
import type { Profile } from '../api/types';
import { Field } from '../components/common';
import { EditorDialog, ResourcePage } from '../components/resource';
import { useLoad } from '../lib/hooks';
import { readyImages, type Image } from '../lib/images';
import { useSession } from '../lib/session';

const fields = ['name', 'kind', 'description', 'kernel', 'initrd', 'cmdline', 'script', 'image', 'image_url', 'image_sha256'] as const;
type Kind = 'netboot' | 'image';
/** Where an image profile's image comes from: the library, or a URL. */
type Source = 'library' | 'url';

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
          <td class="mono small">{p.kind === 'image' ? (p.image ? `library image ${p.image}` : p.image_url) : p.script ? 'own iPXE script' : p.kernel}</td>
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
    image: profile?.image ?? '',
    image_url: profile?.image_url ?? '',
    image_sha256: profile?.image_sha256 ?? '',
  });
  const [source, setSource] = useState<Source>(profile?.image_url ? 'url' : 'library');
  // The library is loaded once the form is about an image.
  const [images, setImages] = useState<Image[] | null>(null);
  const [imagesError, setImagesError] = useState('');
  useEffect(() => {
    if (v.kind !== 'image' || images !== null) return;
    must(session.client.GET('/api/v1/images'))
      .then((l) => setImages(readyImages(l ?? [])))
      .catch((err) => {
        setImages([]);
        setImagesError(message(err));
      });
  }, [v.kind]);
  const upd = (k: keyof typeof v) => (e: { currentTarget: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement }) =>
    setV({ ...v, [k]: e.currentTarget.value });

  async function save() {
    // Only the fields of the chosen kind are sent: the API refuses the others.
    const body =
      v.kind === 'netboot'
        ? { kind: v.kind, description: v.description, kernel: v.kernel.trim(), initrd: v.initrd.trim(), cmdline: v.cmdline, script: v.script }
        : source === 'library'
          ? { kind: v.kind, description: v.description, image: v.image }
          : { kind: v.kind, description: v.description, image_url: v.image_url.trim(), image_sha256: v.image_sha256.trim() };
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
              <Field label="Image source" name="source">
                {(p) => (
                  <select {...p} value={source} onChange={(e) => setSource(e.currentTarget.value as Source)}>
                    <option value="library">an image of the library</option>
                    <option value="url">a URL and its checksum</option>
                  </select>
                )}
              </Field>
              {source === 'library' ? (
                <Field
                  label="Library image"
                  name="image"
                  error={errors.image || imagesError}
                  hint={images && images.length === 0 && !imagesError ? <>No ready image yet: <a href="/images">import or upload one</a>.</> : 'Ready images only.'}
                >
                  {(p) => (
                    <select {...p} value={v.image} onChange={upd('image')}>
                      <option value="">choose an image</option>
                      {/* A profile keeps naming its image while the list loads. */}
                      {v.image && !(images ?? []).some((i) => i.name === v.image) && <option value={v.image}>{v.image}</option>}
                      {(images ?? []).map((i) => <option key={i.name} value={i.name}>{i.name} ({i.format})</option>)}
                    </select>
                  )}
                </Field>
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
        </>
      )}
    </EditorDialog>
  );
}
