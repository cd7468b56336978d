// The machine list: one page at a time from the API, which filters,
// sorts, counts and searches on the appliance (it may hold 100,000
// machines), kept live by the event stream: a change to a machine shown
// updates its row at once, and the page is loaded again soon after any
// change, since only the appliance knows what now belongs on it.
import { useEffect, useRef, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { useLive } from '../lib/live';
import { useAdmin, useSession } from '../lib/session';
import {
  applyEvent, can, countByState, filtered, listQuery, options, pageRange, STATES, type Filter, type SortKey,
} from '../lib/machines';
import type { Machine, MachineList } from '../api/types';
import { bytes, relTime, absTime } from '../lib/format';
import { Dialog, Field, Notice, Progress, StateBadge } from '../components/common';
import { must } from '../api/client';
import { message } from '../api/problem';
import { useNow, useTitle } from '../lib/hooks';
import { downloadText } from '../lib/progress';
import { awaitingFirstBoot, deployTime, pendingWipe } from '../lib/release';
import { ConflictBadge } from './registrations';

/** How soon after a change the page is loaded again (at most once per this). */
export const RELOAD_MS = 300;
/** How long typing in the search box pauses before the search runs. */
const SEARCH_MS = 250;

export function MachinesPage() {
  useTitle('Machines');
  const { session } = useSession();
  const live = useLive();
  const admin = useAdmin();
  const now = useNow();
  const [states, setStates] = useState<Set<string>>(new Set());
  const [segment, setSegment] = useState('');
  const { query } = useLocation();
  const [cluster, setCluster] = useState(query.cluster ?? '');
  const [qInput, setQInput] = useState('');
  const [q, setQ] = useState('');
  const [conflictOnly, setConflictOnly] = useState(false);
  const [sort, setSort] = useState<SortKey>('first_seen');
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [rejecting, setRejecting] = useState<string[] | null>(null);
  // The page shown, and which page it is (the cursors move before it loads).
  const [list, setList] = useState<MachineList | null>(null);
  const [shownPage, setShownPage] = useState(0);
  const [items, setItems] = useState<readonly Machine[]>([]);
  const [error, setError] = useState('');
  const [stale, setStale] = useState(0);
  const [known, setKnown] = useState<{ segments: string[]; clusters: string[] }>({ segments: [], clusters: [] });

  const filter: Filter = { states, segment, cluster, q, conflict: conflictOnly };
  // The pages' cursors belong to one filter and order: another starts again at the first page.
  const key = JSON.stringify(listQuery(filter, sort));
  const [paging, setPaging] = useState({ key, cursors: [''] });
  const cursors = paging.key === key ? paging.cursors : [''];
  const cursor = cursors[cursors.length - 1]!;

  useEffect(() => {
    const t = setTimeout(() => setQ(qInput), SEARCH_MS);
    return () => clearTimeout(t);
  }, [qInput]);

  useEffect(() => {
    const ac = new AbortController();
    (async () => {
      try {
        const got = await must(session.client.GET('/api/v1/machines', { params: { query: listQuery(filter, sort, cursor) }, signal: ac.signal }));
        setList(got);
        setShownPage(cursors.length - 1);
        setItems(got.items ?? []);
        setError('');
      } catch (err) {
        if (!ac.signal.aborted) setError(message(err));
      }
    })();
    return () => ac.abort();
  }, [key, cursor, stale, live.epoch]);

  // Any change may move a machine onto or off this page, or change the
  // counts: load the page again, at most once per RELOAD_MS.
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => {
    const off = live.listen((ev) => {
      setItems((cur) => applyEvent(cur, ev).items);
      if (!timer.current) {
        timer.current = setTimeout(() => {
          timer.current = null;
          setStale((n) => n + 1);
        }, RELOAD_MS);
      }
    });
    return () => {
      off();
      if (timer.current) clearTimeout(timer.current);
      timer.current = null;
    };
  }, []);

  useEffect(() => {
    (async () => {
      try {
        const [segs, cls] = await Promise.all([must(session.client.GET('/api/v1/segments')), must(session.client.GET('/api/v1/clusters'))]);
        setKnown({ segments: (segs ?? []).map((s) => s.name), clusters: (cls ?? []).map((c) => c.name) });
      } catch {
        // The menus then offer what the page shows.
      }
    })();
  }, []);

  const counts = countByState(list);
  const nConflicts = list?.conflicts ?? 0;
  const page = cursors.length - 1;
  const segments = options(known.segments, items, 'segment', segment);
  const clusters = options(known.clusters, items, 'cluster', cluster);
  // Only what is still shown and may be rejected stays selected.
  const chosen = items.filter((m) => selected.has(m.mac) && can(m, 'reject')).map((m) => m.mac);

  function toggleState(s: string) {
    const next = new Set(states);
    if (next.has(s)) next.delete(s);
    else next.add(s);
    setStates(next);
  }
  function toggleSelect(mac: string) {
    const next = new Set(selected);
    if (next.has(mac)) next.delete(mac);
    else next.add(mac);
    setSelected(next);
  }
  const rejectable = items.filter((m) => can(m, 'reject'));
  const allChosen = rejectable.length > 0 && rejectable.every((m) => selected.has(m.mac));
  const pager = list && (page > 0 || list.next_cursor) && (
    <nav class="pager" aria-label="Pages">
      <button type="button" class="secondary small" disabled={page === 0} onClick={() => setPaging({ key, cursors: cursors.slice(0, -1) })}>
        Previous page
      </button>
      <span class="muted">{pageRange(shownPage, items.length, list.total)}</span>
      <button type="button" class="secondary small" disabled={!list.next_cursor}
        onClick={() => setPaging({ key, cursors: [...cursors, list.next_cursor!] })}>
        Next page
      </button>
    </nav>
  );

  return (
    <section class="machines">
      <div class="page-head">
        <h1>Machines</h1>
        <p class="muted" aria-live="polite">
          {list ? `${pageRange(shownPage, items.length, list.total)} ${list.total === 1 ? 'machine' : 'machines'}` : 'Loading…'}
        </p>
      </div>
      {error && <Notice>Could not load the machines: {error}</Notice>}
      {(nConflicts > 0 || conflictOnly) && (
        <div class="notice notice-error conflict-summary" role="alert">
          <strong>⚠ {nConflicts === 1 ? '1 machine has' : `${nConflicts} machines have`} a MAC conflict</strong>: more than one host
          registered with the same MAC (possible MAC spoofing). Open the machine to see its registrations before approving it.{' '}
          <button type="button" class="small secondary" aria-pressed={conflictOnly} onClick={() => setConflictOnly(!conflictOnly)}>
            {conflictOnly ? 'Show every machine' : 'Show only these'}
          </button>
        </div>
      )}

      <div class="state-filter" role="group" aria-label="Filter by state">
        <button type="button" class="chip" aria-pressed={states.size === 0} onClick={() => setStates(new Set())}>
          All <span class="count" data-count="all">{counts.all}</span>
        </button>
        {STATES.map((s) => (
          <button type="button" key={s} class={`chip chip-${s}`} aria-pressed={states.has(s)} onClick={() => toggleState(s)}>
            {s} <span class="count" data-count={s}>{counts[s]}</span>
          </button>
        ))}
      </div>

      <div class="toolbar">
        <Field label="Search" name="q">
          {(p) => (
            <input {...p} type="search" value={qInput} placeholder="MAC, host name, IP, vendor, model, serial…" onInput={(e) => setQInput(e.currentTarget.value)} />
          )}
        </Field>
        <Field label="Segment" name="segment">
          {(p) => (
            <select {...p} value={segment} onChange={(e) => setSegment(e.currentTarget.value)}>
              <option value="">all segments</option>
              {segments.map((s) => <option key={s} value={s}>{s}</option>)}
            </select>
          )}
        </Field>
        <Field label="Cluster" name="cluster">
          {(p) => (
            <select {...p} value={cluster} onChange={(e) => setCluster(e.currentTarget.value)}>
              <option value="">all clusters</option>
              {clusters.map((c) => <option key={c} value={c}>{c}</option>)}
            </select>
          )}
        </Field>
        <Field label="Sort by" name="sort">
          {(p) => (
            <select {...p} value={sort} onChange={(e) => setSort(e.currentTarget.value as SortKey)}>
              <option value="first_seen">newest first</option>
              <option value="state">state</option>
              <option value="hostname">host name</option>
              <option value="mac">MAC</option>
            </select>
          )}
        </Field>
      </div>

      {admin && chosen.length > 0 && (
        <div class="bulk" role="region" aria-label="Selected machines">
          <span>{chosen.length} selected</span>
          <button type="button" class="danger" onClick={() => setRejecting(chosen)}>Reject selected…</button>
          <button type="button" class="secondary" onClick={() => setSelected(new Set())}>Clear selection</button>
        </div>
      )}

      <div class="table-wrap">
        <table class="list" aria-label="Machines">
          <thead>
            <tr>
              {admin && (
                <th class="sel">
                  <input
                    type="checkbox"
                    aria-label="Select every inventoried machine shown"
                    checked={allChosen}
                    disabled={rejectable.length === 0}
                    onChange={() => setSelected(allChosen ? new Set() : new Set(rejectable.map((m) => m.mac)))}
                  />
                </th>
              )}
              <th>State</th>
              <th>Host</th>
              <th>MAC</th>
              <th class="wide">Segment</th>
              <th>Hardware</th>
              <th class="wide">CPU</th>
              <th class="wide">Memory</th>
              <th class="wide">Disks</th>
              <th>Seen</th>
              <th>Status</th>
            </tr>
          </thead>
          <tbody>
            {items.map((m) => (
              <Row key={m.mac} m={m} now={now} admin={admin} selected={selected.has(m.mac)} onSelect={() => toggleSelect(m.mac)} />
            ))}
          </tbody>
        </table>
        {list && items.length === 0 && (
          <p class="empty">
            {!filtered(filter) && page === 0
              ? 'No machine yet. Machines appear here as soon as they PXE-boot on a discovery segment.'
              : 'No machine matches these filters.'}
          </p>
        )}
      </div>
      {pager}
      <RejectDialog macs={rejecting} onClose={(done) => { setRejecting(null); if (done) setSelected(new Set()); }} />
    </section>
  );
}

function Row({ m, now, admin, selected, onSelect }: { m: Machine; now: number; admin: boolean; selected: boolean; onSelect: () => void }) {
  const s = m.summary;
  const href = `/machines/${m.mac}`;
  return (
    <tr data-mac={m.mac} data-state={m.state} data-conflict={m.mac_conflict ? 'true' : undefined} class={m.mac_conflict ? 'conflict' : undefined}>
      {admin && (
        <td class="sel">
          {can(m, 'reject') && (
            <input type="checkbox" aria-label={`Select ${m.hostname}`} checked={selected} onChange={onSelect} />
          )}
        </td>
      )}
      <td>
        <StateBadge state={m.state} />
        <ConflictBadge m={m} />
      </td>
      <td>
        <a href={href} class="host">{m.hostname || m.mac}</a>
        {m.cluster && <div class="sub">{m.cluster}{m.profile ? ` · ${m.profile}` : ''}</div>}
      </td>
      <td class="mono">{m.mac}{m.ip && <div class="sub">{m.ip}</div>}</td>
      <td class="wide">{m.segment || '—'}</td>
      <td>
        {s?.vendor || s?.model ? (
          <>
            {s.vendor}
            <div class="sub">{s.model}</div>
          </>
        ) : (
          <span class="muted">not reported</span>
        )}
      </td>
      <td class="wide">
        {s?.cores ? `${s.cores} cores / ${s.threads ?? s.cores} threads` : '—'}
        {s?.cpu_model && <div class="sub">{s.cpu_model}</div>}
      </td>
      <td class="wide">{s?.memory_bytes ? bytes(s.memory_bytes) : '—'}</td>
      <td class="wide">{s?.disks ? `${s.disks} ${s.disks === 1 ? 'disk' : 'disks'}, ${bytes(s.disk_bytes)}` : '—'}</td>
      <td>
        <span title={absTime(m.first_seen)}>{relTime(m.first_seen, now)}</span>
        {m.temporary && m.expires_at && (
          <div class="sub expires" title={`Temporary record, deleted ${absTime(m.expires_at)} unless approved`}>
            expires {relTime(m.expires_at, now)}
          </div>
        )}
      </td>
      <td class="status">
        <Status m={m} admin={admin} now={now} />
      </td>
    </tr>
  );
}

/** Download is the image download's line under the status, if reported. */
function Download({ m, now, live }: { m: Machine; now: number; live: boolean }) {
  const text = downloadText(m.progress_detail, now, live);
  return text ? <div class="sub download">{text}</div> : null;
}

/**
 * Status is what to do or watch: approve, progress (with the image
 * download's bytes, rate and time left at now), a failure and retry.
 */
export function Status({ m, admin, now = Date.now() }: { m: Machine; admin: boolean; now?: number }) {
  const { session } = useSession();
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  async function retry() {
    setBusy(true);
    setErr('');
    try {
      await must(session.client.POST('/api/v1/machines/{mac}/retry', { params: { path: { mac: m.mac } } }));
    } catch (e) {
      setErr(message(e));
    } finally {
      setBusy(false);
    }
  }
  // A released machine is discovered and approved again once wiped.
  const pw = pendingWipe(m);
  const wipe = pw && (
    <div class="sub wipe-pending">
      {pw.wiped.length ? 'released: disks wiped, approve it again' : 'release pending: disks are wiped at the next discovery boot'}
    </div>
  );
  switch (m.state) {
    case 'inventoried':
      // The buttons follow the API's `actions`, never the state.
      return (
        <>
          {admin && can(m, 'approve') ? (
            <a class="button small" href={`/machines/${m.mac}/approve`} data-action="approve">Approve…</a>
          ) : (
            <span class="muted">awaiting approval</span>
          )}
          {wipe}
        </>
      );
    case 'provisioning':
    case 'approved':
      if (awaitingFirstBoot(m))
        return <span class="install-waiting">installed — waiting for the first boot report</span>;
      return (
        <>
          <Progress value={m.progress} label={`Provisioning progress of ${m.hostname}`} />
          {m.message && <div class="sub">{m.message}</div>}
          <Download m={m} now={now} live />
        </>
      );
    case 'failed':
      return (
        <>
          <div class="fail">{m.message || 'failed'}</div>
          <Download m={m} now={now} live={false} />
          {admin && can(m, 'retry') && (
            <button type="button" class="small" disabled={busy} onClick={retry}>Retry</button>
          )}
          {err && <div class="field-error">{err}</div>}
        </>
      );
    case 'rejected':
      return <span class="muted">{m.message || 'rejected'}</span>;
    case 'discovered':
      return (
        <>
          <span class="muted">waiting for inventory</span>
          {wipe}
        </>
      );
    default: {
      const took = deployTime(m);
      return (
        <>
          <span class="muted">{m.message}</span>
          {took && <div class="sub deploy-time">deployed in {took}</div>}
        </>
      );
    }
  }
}

/** RejectDialog rejects one or more machines with one reason. */
export function RejectDialog({ macs, onClose }: { macs: string[] | null; onClose: (done: boolean) => void }) {
  const { session } = useSession();
  const [reason, setReason] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const n = macs?.length ?? 0;

  async function submit(e: Event) {
    e.preventDefault();
    if (!macs) return;
    if (!reason.trim()) {
      setError('Give a reason: it is kept in the audit log.');
      return;
    }
    setBusy(true);
    setError('');
    const failures: string[] = [];
    for (const mac of macs) {
      try {
        await must(
          session.client.POST('/api/v1/machines/{mac}/reject', { params: { path: { mac } }, body: { reason: reason.trim() } }),
        );
      } catch (err) {
        failures.push(`${mac}: ${message(err)}`);
      }
    }
    setBusy(false);
    if (failures.length) {
      setError(failures.join('\n'));
      return;
    }
    setReason('');
    onClose(true);
  }

  return (
    <Dialog title={n === 1 ? 'Reject machine' : `Reject ${n} machines`} open={macs !== null} onClose={() => onClose(false)}>
      <form onSubmit={submit}>
        <p>
          A rejected machine gets no boot offer; its record stays as a deny entry until deleted.
          {n > 1 && <> Machines: {macs!.join(', ')}.</>}
        </p>
        <Field label="Reason" name="reason" error={error}>
          {(p) => <textarea {...p} rows={3} value={reason} maxLength={1000} onInput={(e) => setReason(e.currentTarget.value)} />}
        </Field>
        <div class="actions">
          <button type="submit" class="danger" disabled={busy}>{busy ? 'Rejecting…' : 'Reject'}</button>
          <button type="button" class="secondary" onClick={() => onClose(false)}>Cancel</button>
        </div>
      </form>
    </Dialog>
  );
}
