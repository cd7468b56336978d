// The scaffolding of the pages that list records an admin creates, edits
// and deletes by name (clusters, profiles): the table with its row
// actions, the editor dialog that puts the API's refusal on the fields it
// names, and the delete confirmation that shows a 409 as it is.
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, fieldErrors, message } from '../api/problem';
import { useTitle } from '../lib/hooks';
import { useAdmin } from '../lib/session';
import { Dialog, Notice } from './common';

interface Named {
  name: string;
}

type OnClose = (changed: boolean) => void;

interface ResourcePageProps<T extends Named> {
  /** Heading, document title and table label: "Clusters". */
  title: string;
  /** One record, in the New button and the dialogs: "cluster". */
  noun: string;
  intro: ComponentChildren;
  items: T[];
  error: string;
  reload: () => void;
  /** Column headings; row renders the matching cells of one record. */
  columns: string[];
  row: (item: T) => ComponentChildren;
  empty: string;
  /** What the API's in-use refusal is about: "a machine". */
  usedBy: string;
  /** editor renders the editor of item, or of a new record when null. */
  editor: (item: T | null, onClose: OnClose) => ComponentChildren;
  remove: (name: string) => Promise<unknown>;
}

/** ResourcePage lists records; an admin also gets New, Edit and Delete. */
export function ResourcePage<T extends Named>(p: ResourcePageProps<T>) {
  useTitle(p.title);
  const admin = useAdmin();
  const [editing, setEditing] = useState<T | 'new' | null>(null);
  const [deleting, setDeleting] = useState<T | null>(null);
  const closed = (close: () => void) => (changed: boolean) => {
    close();
    if (changed) p.reload();
  };

  return (
    <section>
      <div class="page-head">
        <h1>{p.title}</h1>
        {admin && <button type="button" onClick={() => setEditing('new')}>{`New ${p.noun}…`}</button>}
      </div>
      <p class="muted">{p.intro}</p>
      {p.error && <Notice>{p.error}</Notice>}
      <div class="table-wrap">
        <table class="list" aria-label={p.title}>
          <thead>
            <tr>{p.columns.map((c) => <th key={c}>{c}</th>)}{admin && <th><span class="sr-only">Actions</span></th>}</tr>
          </thead>
          <tbody>
            {p.items.map((it) => (
              <tr key={it.name} data-name={it.name}>
                {p.row(it)}
                {admin && (
                  <td class="row-actions">
                    <button type="button" class="small secondary" onClick={() => setEditing(it)} aria-label={`Edit ${it.name}`}>Edit</button>
                    <button type="button" class="small secondary danger-text" onClick={() => setDeleting(it)} aria-label={`Delete ${it.name}`}>Delete</button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
        {p.items.length === 0 && !p.error && <p class="empty">{p.empty}</p>}
      </div>
      {editing && p.editor(editing === 'new' ? null : editing, closed(() => setEditing(null)))}
      <DeleteDialog
        what={p.noun}
        usedBy={p.usedBy}
        name={deleting?.name ?? ''}
        open={deleting !== null}
        onDelete={() => p.remove(deleting!.name)}
        onClose={closed(() => setDeleting(null))}
      />
    </section>
  );
}

interface EditorDialogProps {
  noun: string;
  /** The record being edited; null for a new one. */
  item: Named | null;
  /** The form's fields, onto which the API's errors[].location is mapped. */
  fields: readonly string[];
  save: () => Promise<unknown>;
  onClose: OnClose;
  /** children renders the fields, given each field's error. */
  children: (errors: Record<string, string>) => ComponentChildren;
}

/**
 * EditorDialog is the form that creates or edits a record: errors the API
 * names a field for are shown on that field, the rest above the form.
 */
export function EditorDialog({ noun, item, fields, save, onClose, children }: EditorDialogProps) {
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [general, setGeneral] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setErrors({});
    setGeneral([]);
    try {
      await save();
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
    <Dialog title={item ? `Edit ${noun} ${item.name}` : `New ${noun}`} open onClose={() => onClose(false)}>
      <form onSubmit={submit}>
        {general.length > 0 && <Notice>{general.join(' ')}</Notice>}
        {children(errors)}
        <div class="actions">
          <button type="submit" disabled={busy}>{item ? 'Save' : 'Create'}</button>
          <button type="button" class="secondary" onClick={() => onClose(false)}>Cancel</button>
        </div>
      </form>
    </Dialog>
  );
}

/** DeleteDialog confirms a deletion and shows the API's refusal (409 in use). */
function DeleteDialog({ what, usedBy, name, open, onDelete, onClose }: { what: string; usedBy: string; name: string; open: boolean; onDelete: () => Promise<unknown>; onClose: OnClose }) {
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
      <p>Delete the {what} {name}? The API refuses while {usedBy} uses it.</p>
      {error && <Notice>{error}</Notice>}
      <div class="actions">
        <button type="button" class="danger" disabled={busy} onClick={del}>Delete</button>
        <button type="button" class="secondary" onClick={() => onClose(false)}>Cancel</button>
      </div>
    </Dialog>
  );
}
