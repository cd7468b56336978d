// The audit log: who did what, newest first, with filters and paging.
import { useEffect, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { must } from '../api/client';
import { message } from '../api/problem';
import type { AuditEntry } from '../api/types';
import { Field, Notice } from '../components/common';
import { absTime } from '../lib/format';
import { useTitle } from '../lib/hooks';
import { useSession } from '../lib/session';

interface AuditFilter {
  mac: string;
  actor: string;
  action: string;
  since: string;
  until: string;
}

/** localToISO turns a datetime-local value into RFC 3339; '' stays ''. */
export function localToISO(v: string): string {
  if (!v) return '';
  const t = new Date(v);
  return Number.isNaN(t.getTime()) ? '' : t.toISOString();
}

export function AuditPage() {
  useTitle('Audit log');
  const { session } = useSession();
  const { query } = useLocation();
  const [draft, setDraft] = useState<AuditFilter>({ mac: query.mac ?? '', actor: '', action: '', since: '', until: '' });
  const [filter, setFilter] = useState<AuditFilter>(draft);
  const [items, setItems] = useState<AuditEntry[]>([]);
  const [cursor, setCursor] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  async function load(f: AuditFilter, after: string) {
    setBusy(true);
    setError('');
    try {
      const q: Record<string, string | number> = { limit: 100 };
      if (f.mac.trim()) q.mac = f.mac.trim();
      if (f.actor.trim()) q.actor = f.actor.trim();
      if (f.action.trim()) q.action = f.action.trim();
      if (localToISO(f.since)) q.since = localToISO(f.since);
      if (localToISO(f.until)) q.until = localToISO(f.until);
      if (after) q.cursor = after;
      const page = await must(session.client.GET('/api/v1/audit', { params: { query: q } }));
      setItems((cur) => (after ? [...cur, ...(page.items ?? [])] : page.items ?? []));
      setCursor(page.next_cursor ?? '');
    } catch (err) {
      setError(message(err));
    } finally {
      setBusy(false);
    }
  }

  useEffect(() => {
    void load(filter, '');
  }, [filter]);

  const upd = (k: keyof AuditFilter) => (e: { currentTarget: HTMLInputElement }) => setDraft({ ...draft, [k]: e.currentTarget.value });

  return (
    <section>
      <div class="page-head"><h1>Audit log</h1></div>
      <form
        class="toolbar"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter({ ...draft });
        }}
        aria-label="Audit filters"
      >
        <Field label="Machine (MAC)" name="mac">{(p) => <input {...p} class="mono" value={draft.mac} onInput={upd('mac')} />}</Field>
        <Field label="Actor" name="actor">{(p) => <input {...p} placeholder="token:admin" value={draft.actor} onInput={upd('actor')} />}</Field>
        <Field label="Action" name="action">{(p) => <input {...p} placeholder="approve" value={draft.action} onInput={upd('action')} />}</Field>
        <Field label="Since" name="since">{(p) => <input {...p} type="datetime-local" value={draft.since} onInput={upd('since')} />}</Field>
        <Field label="Until" name="until">{(p) => <input {...p} type="datetime-local" value={draft.until} onInput={upd('until')} />}</Field>
        <div class="toolbar-actions">
          <button type="submit">Apply</button>
          <button
            type="button"
            class="secondary"
            onClick={() => {
              const empty = { mac: '', actor: '', action: '', since: '', until: '' };
              setDraft(empty);
              setFilter(empty);
            }}
          >
            Clear
          </button>
        </div>
      </form>
      {error && <Notice>{error}</Notice>}
      <div class="table-wrap">
        <table class="list" aria-label="Audit entries">
          <thead>
            <tr><th>Time</th><th>Machine</th><th>Actor</th><th>Action</th><th>Detail</th></tr>
          </thead>
          <tbody>
            {items.map((e) => (
              <tr key={e.id}>
                <td>{absTime(e.time)}</td>
                <td class="mono">{e.mac ? <a href={`/machines/${e.mac}`}>{e.mac}</a> : '—'}</td>
                <td>{e.actor}</td>
                <td>{e.action}</td>
                <td class="detail">{e.detail}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {!busy && items.length === 0 && !error && <p class="empty">No entries match.</p>}
      </div>
      {cursor && (
        <button type="button" class="secondary" disabled={busy} onClick={() => load(filter, cursor)}>Load older entries</button>
      )}
    </section>
  );
}
