// The image library: OS images imported by URL or uploaded, with their
// format, size, checksum and import progress; image profiles name them.
// The list is polled while an import runs or a copy is on its way to an
// appliance of the fleet (the event stream carries machines only).
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { must } from '../api/client';
import { ApiError, fieldErrors, message } from '../api/problem';
import { Dialog, Field, Notice, Progress, StateBadge } from '../components/common';
import { absTime, bytes } from '../lib/format';
import { useLoad, useTitle } from '../lib/hooks';
import { anyImporting, copyText, importProgress, nameFromFile, shortSum, transfer, uploadImage, type Image, type Transfer } from '../lib/images';
import { useAdmin, useSession } from '../lib/session';

/** pollEvery is how often the list is reloaded while an import runs. */
export const pollEvery = 1500;

export function ImagesPage() {
  useTitle('Images');
  const { session } = useSession();
  const admin = useAdmin();
  const { data, error, reload } = useLoad(async () => (await must(session.client.GET('/api/v1/images'))) ?? [], [] as Image[]);
  const [dialog, setDialog] = useState<'import' | 'upload' | null>(null);
  const [deleting, setDeleting] = useState<Image | null>(null);

  const importing = anyImporting(data);
  useEffect(() => {
    if (!importing) return;
    const t = setTimeout(reload, pollEvery);
    return () => clearTimeout(t);
  }, [data, importing]);

  const closed = (changed: boolean) => {
    setDialog(null);
    setDeleting(null);
    if (changed) reload();
  };

  return (
    <section>
      <div class="page-head">
        <h1>Images</h1>
        {admin && (
          <div class="actions">
            <button type="button" onClick={() => setDialog('import')}>Import from URL…</button>
            <button type="button" class="secondary" onClick={() => setDialog('upload')}>Upload a file…</button>
          </div>
        )}
      </div>
      <p class="muted">
        OS images that image profiles install. raw, .gz, .zst and .xz images are kept as they are; qcow2 is converted to raw. Machines
        fetch them from the appliance, and resume an interrupted download. Appliances that share a store each keep their own copy,
        fetched from one another. An image that a profile uses cannot be deleted.
      </p>
      {error && <Notice>{error}</Notice>}
      <div class="table-wrap">
        <table class="list" aria-label="Images">
          <thead>
            <tr>
              <th>Name</th>
              <th>State</th>
              <th>Format</th>
              <th>Size</th>
              <th>SHA-256</th>
              <th>Source</th>
              <th>Updated</th>
              {admin && <th><span class="sr-only">Actions</span></th>}
            </tr>
          </thead>
          <tbody>
            {data.map((img) => (
              <tr key={img.name} data-name={img.name}>
                <td>{img.url ? <a href={img.url} download>{img.name}</a> : img.name}</td>
                <td><ImageState img={img} /></td>
                <td>{img.format}</td>
                <td>{img.state === 'ready' ? bytes(img.size) : ''}</td>
                <td class="mono small" title={img.sha256}>{shortSum(img.sha256)}</td>
                <td class="mono small">{img.source}</td>
                <td>{absTime(img.updated_at)}</td>
                {admin && (
                  <td class="row-actions">
                    <button type="button" class="small secondary danger-text" onClick={() => setDeleting(img)} aria-label={`Delete ${img.name}`}>
                      Delete
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
        {data.length === 0 && !error && <p class="empty">No image yet. Import one by URL or upload a file.</p>}
      </div>
      {dialog === 'import' && <ImportDialog onClose={closed} />}
      {dialog === 'upload' && <UploadDialog onClose={closed} />}
      {deleting && <DeleteImageDialog img={deleting} onClose={closed} />}
    </section>
  );
}

/** ImageState is the badge, with progress while importing and the reason when failed. */
function ImageState({ img }: { img: Image }) {
  if (img.state === 'importing') return <TransferBar t={importProgress(img)} label={`import of ${img.name}`} />;
  return (
    <>
      <StateBadge state={img.state} />
      {img.state === 'failed' && img.error && <div class="small field-error" data-error-for={img.name}>{img.error}</div>}
      <Copies img={img} />
    </>
  );
}

/**
 * Copies shows where each appliance's copy of a ready image is, when
 * appliances share the library: each serves its own copy, and machines
 * booting through one that has no verified copy yet wait for it. A lone
 * appliance with its copy shows nothing more.
 */
function Copies({ img }: { img: Image }) {
  const cs = img.appliances ?? [];
  const here = img.here && img.here !== 'present';
  if (img.state !== 'ready' || (cs.length <= 1 && !here)) return null;
  return (
    <ul class="copies small" aria-label={`Copies of ${img.name}`}>
      {here && (
        <li data-copy="here" class="field-error">
          Not on this appliance yet ({img.here}): machines booting through it wait.
        </li>
      )}
      {cs.map((c) => (
        <li key={c.appliance} data-copy={c.appliance} title={c.error || c.url}>
          <span class="mono">{c.appliance}</span> {copyText(c)}
          {c.state === 'failed' && c.error && <div class="muted">{c.error}</div>}
        </li>
      ))}
    </ul>
  );
}

function TransferBar({ t, label }: { t: Transfer; label: string }) {
  return (
    <span class="transfer" data-state="importing">
      {t.percent !== null ? <Progress value={t.percent} label={label} /> : <StateBadge state="importing" />}
      <span class="small muted"> {t.text}</span>
    </span>
  );
}

type OnClose = (changed: boolean) => void;

/** FormDialog is a dialog form that puts the API's refusal on the fields it names. */
function FormDialog(p: {
  title: string;
  fields: readonly string[];
  submit: string;
  save: () => Promise<unknown>;
  onClose: OnClose;
  onCancel?: () => void;
  busyNote?: ComponentChildren;
  children: (errors: Record<string, string>, busy: boolean) => ComponentChildren;
}) {
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [general, setGeneral] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setErrors({});
    setGeneral([]);
    try {
      await p.save();
      p.onClose(true);
    } catch (err) {
      if (err instanceof ApiError) {
        const r = fieldErrors(err.problem, p.fields);
        setErrors(r.byField);
        setGeneral(r.general);
      } else setGeneral([message(err)]);
    } finally {
      setBusy(false);
    }
  }
  const cancel = () => {
    p.onCancel?.();
    // A failed upload or import may have left a failed record to show.
    p.onClose(general.length > 0 || Object.keys(errors).length > 0);
  };
  return (
    <Dialog title={p.title} open onClose={cancel}>
      <form onSubmit={submit}>
        {general.length > 0 && <Notice>{general.join(' ')}</Notice>}
        {p.children(errors, busy)}
        {busy && p.busyNote}
        <div class="actions">
          <button type="submit" disabled={busy}>{p.submit}</button>
          <button type="button" class="secondary" onClick={cancel}>Cancel</button>
        </div>
      </form>
    </Dialog>
  );
}

function ImportDialog({ onClose }: { onClose: OnClose }) {
  const { session } = useSession();
  const [v, setV] = useState({ name: '', url: '', sha256: '' });
  const upd = (k: keyof typeof v) => (e: { currentTarget: HTMLInputElement }) => setV({ ...v, [k]: e.currentTarget.value });
  async function save() {
    const body = { name: v.name.trim(), url: v.url.trim(), ...(v.sha256.trim() ? { sha256: v.sha256.trim() } : {}) };
    await must(session.client.POST('/api/v1/images', { body }));
  }
  return (
    <FormDialog title="Import an image from a URL" fields={['name', 'url', 'sha256']} submit="Import" save={save} onClose={onClose}>
      {(errors) => (
        <>
          <Field label="Name" name="name" error={errors.name} hint="Letters, digits, '.', '_' and '-'.">
            {(p) => <input {...p} value={v.name} onInput={upd('name')} autoFocus />}
          </Field>
          <Field label="URL" name="url" error={errors.url} hint="http or https; the appliance fetches it itself.">
            {(p) => <input {...p} class="mono" value={v.url} onInput={upd('url')} />}
          </Field>
          <Field label="SHA-256 (optional)" name="sha256" error={errors.sha256} hint="Of the file at the URL; a mismatch fails the import.">
            {(p) => <input {...p} class="mono" value={v.sha256} onInput={upd('sha256')} />}
          </Field>
        </>
      )}
    </FormDialog>
  );
}

function UploadDialog({ onClose }: { onClose: OnClose }) {
  const { session, signOut } = useSession();
  const [name, setName] = useState('');
  const [sha256, setSha256] = useState('');
  const [file, setFile] = useState<File | null>(null);
  const [sent, setSent] = useState<Transfer | null>(null);
  const abort = useRef<AbortController | null>(null);
  useEffect(() => () => abort.current?.abort(), []);

  async function save() {
    if (!file) throw new ApiError(422, { status: 422, detail: 'Choose a file to upload.', errors: [{ location: 'body.file', message: 'choose a file' }] });
    abort.current = new AbortController();
    setSent(transfer(0, file.size));
    try {
      await uploadImage(name.trim(), file, {
        token: session.token,
        sha256: sha256.trim() || undefined,
        signal: abort.current.signal,
        onProgress: (n, total) => setSent(transfer(n, total)),
        onUnauthorized: () => signOut('The API refused your token; sign in again.'),
      });
    } finally {
      setSent(null);
    }
  }
  return (
    <FormDialog
      title="Upload an image"
      fields={['name', 'sha256', 'file']}
      submit="Upload"
      save={save}
      onClose={onClose}
      onCancel={() => abort.current?.abort()}
      busyNote={sent && <div class="upload-progress"><TransferBar t={sent} label="upload" /></div>}
    >
      {(errors, busy) => (
        <>
          <Field label="File" name="file" error={errors.file} hint="raw, .gz, .zst, .xz or qcow2">
            {(p) => (
              <input
                {...p}
                type="file"
                disabled={busy}
                onChange={(e) => {
                  const f = e.currentTarget.files?.[0] ?? null;
                  setFile(f);
                  if (f && !name) setName(nameFromFile(f.name));
                }}
              />
            )}
          </Field>
          <Field label="Name" name="name" error={errors.name} hint="Letters, digits, '.', '_' and '-'.">
            {(p) => <input {...p} value={name} disabled={busy} onInput={(e) => setName(e.currentTarget.value)} />}
          </Field>
          <Field label="SHA-256 (optional)" name="sha256" error={errors.sha256} hint="The appliance checks the file against it.">
            {(p) => <input {...p} class="mono" value={sha256} disabled={busy} onInput={(e) => setSha256(e.currentTarget.value)} />}
          </Field>
        </>
      )}
    </FormDialog>
  );
}

function DeleteImageDialog({ img, onClose }: { img: Image; onClose: OnClose }) {
  const { session } = useSession();
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  async function del() {
    setBusy(true);
    setError('');
    try {
      await must(session.client.DELETE('/api/v1/images/{name}', { params: { path: { name: img.name } } }));
      onClose(true);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 409 ? `Cannot delete: ${err.message}` : message(err));
    } finally {
      setBusy(false);
    }
  }
  return (
    <Dialog title={`Delete image ${img.name}`} open onClose={() => onClose(false)}>
      <p>
        Delete the image {img.name} and its file{img.state === 'importing' ? ', stopping its import' : ''}? The API refuses while a profile
        uses it.
      </p>
      {error && <Notice>{error}</Notice>}
      <div class="actions">
        <button type="button" class="danger" disabled={busy} onClick={del}>Delete</button>
        <button type="button" class="secondary" onClick={() => onClose(false)}>Cancel</button>
      </div>
    </Dialog>
  );
}
