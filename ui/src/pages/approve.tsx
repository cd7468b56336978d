// The approval wizard: token and cluster → the appliance verifies the
// token → review the resources → settings → confirm → done, or the API's
// refusal shown on the field it names.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { useRoute } from 'preact-iso';
import { must } from '../api/client';
import { ApiError, message } from '../api/problem';
import type { Cluster, Machine, Profile, Segment } from '../api/types';
import { Field, Notice, StateBadge } from '../components/common';
import { useTitle } from '../lib/hooks';
import { asInventory, defaultDisk, diskID } from '../lib/inventory';
import { registrationsOf, shortID } from '../lib/registrations';
import { can } from '../lib/machines';
import { useAdmin, useSession } from '../lib/session';
import { ReviewStep, SettingsStep } from './approve-steps';
import {
  emptyForm,
  lowerHostname,
  normalizeToken,
  problemErrors,
  STEPS,
  toRequest,
  validate,
  type ApprovalForm,
  type Errors,
  type Step,
} from '../lib/wizard';

const stepTitles: Record<Step, string> = {
  token: 'Token and cluster',
  review: 'Review the machine',
  settings: 'Settings',
  confirm: 'Confirm',
};

export function ApprovePage() {
  const { params } = useRoute();
  // Any notation: the API reads it, and the page shows the machine's own MAC.
  const mac = params.mac ?? '';
  const { session } = useSession();
  const admin = useAdmin();
  useTitle(`Approve ${mac}`);
  const [m, setM] = useState<Machine | null>(null);
  const [clusters, setClusters] = useState<Cluster[]>([]);
  const [profiles, setProfiles] = useState<Profile[]>([]);
  const [segments, setSegments] = useState<Segment[]>([]);
  const [loadError, setLoadError] = useState('');
  const [step, setStep] = useState<Step>('token');
  const [form, setForm] = useState<ApprovalForm>(emptyForm);
  const [errors, setErrors] = useState<Errors>({});
  const [general, setGeneral] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<Machine | null>(null);
  // The registration whose token the appliance matched: approval binds to it.
  const [matched, setMatched] = useState('');

  useEffect(() => {
    const ac = new AbortController();
    (async () => {
      try {
        const signal = ac.signal;
        const [mm, cs, ps, ss] = await Promise.all([
          must(session.client.GET('/api/v1/machines/{mac}', { params: { path: { mac } }, signal })),
          must(session.client.GET('/api/v1/clusters', { signal })),
          must(session.client.GET('/api/v1/profiles', { signal })),
          must(session.client.GET('/api/v1/segments', { signal })),
        ]);
        setM(mm);
        setClusters(cs ?? []);
        setProfiles(ps ?? []);
        setSegments(ss ?? []);
        const inv = asInventory(mm.inventory);
        const d = inv ? defaultDisk(inv.disks ?? []) : undefined;
        // A declaration in Git fills the form; the administrator still
        // types the console token and may change anything.
        const g = mm.declared;
        setForm((f) => ({
          ...f,
          hostname: f.hostname || g?.hostname || mm.hostname,
          disk: f.disk || g?.disk || (d ? diskID(d) : ''),
          cluster: f.cluster || g?.cluster || (cs?.length === 1 ? cs[0]!.name : ''),
          profile: f.profile || g?.profile || '',
          mode: g?.network === 'static' ? 'static' : f.mode,
          address: f.address || g?.address || '',
        }));
      } catch (err) {
        if (!ac.signal.aborted) setLoadError(message(err));
      }
    })();
    return () => ac.abort();
  }, [mac]);

  const inv = useMemo(() => asInventory(m?.inventory), [m]);
  const segment = segments.find((s) => s.name === m?.segment);
  const cluster = clusters.find((c) => c.name === form.cluster);

  function set<K extends keyof ApprovalForm>(k: K, v: ApprovalForm[K]) {
    setForm((f) => ({ ...f, [k]: v }));
  }

  function refused(err: unknown) {
    if (err instanceof ApiError) {
      const r = problemErrors(err.problem);
      setErrors(r.errors);
      setGeneral(r.general);
      setStep(r.step);
    } else {
      setGeneral([message(err)]);
    }
  }

  async function next(e: Event) {
    e.preventDefault();
    setGeneral([]);
    const mine = step === 'review' ? {} : validate(form, step, segment?.subnet);
    setErrors(mine);
    if (Object.keys(mine).length) return;
    if (step === 'token') {
      setBusy(true);
      try {
        const check = await must(
          session.client.POST('/api/v1/machines/{mac}/verify-token', {
            params: { path: { mac } },
            body: { token: normalizeToken(form.token) ?? form.token },
          }),
        );
        setMatched(check.registration);
        setStep('review');
      } catch (err) {
        refused(err);
      } finally {
        setBusy(false);
      }
      return;
    }
    if (step === 'review') setStep('settings');
    else if (step === 'settings') setStep('confirm');
    else if (step === 'confirm') await approve();
  }

  async function approve() {
    const errs = validate(form, undefined, segment?.subnet);
    if (Object.keys(errs).length) {
      setErrors(errs);
      setStep(errs.token || errs.cluster ? 'token' : 'settings');
      return;
    }
    setBusy(true);
    try {
      const out = await must(
        session.client.POST('/api/v1/machines/{mac}/approve', { params: { path: { mac } }, body: toRequest(form) }),
      );
      setDone(out);
    } catch (err) {
      refused(err);
    } finally {
      setBusy(false);
    }
  }

  function back() {
    setErrors({});
    setGeneral([]);
    const i = STEPS.indexOf(step);
    if (i > 0) setStep(STEPS[i - 1]!);
  }

  if (loadError) return <Notice>Could not load {mac}: {loadError}</Notice>;
  if (!m) return <p class="loading" role="status">Loading {mac}…</p>;

  const head = (
    <>
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href="/">Machines</a> / <a href={`/machines/${m.mac}`}>{m.hostname}</a> / approve
      </nav>
      <h1>
        Approve {m.hostname} <StateBadge state={m.state} />
      </h1>
    </>
  );
  if (done) {
    return (
      <section class="wizard" data-step="done">
        {head}
        <Notice kind="success">
          Approved. {done.hostname} is now <strong data-state={done.state}>{done.state}</strong>
          {done.state === 'ready' ? ': its next network boot gets the production script.' : ': the agent installs the image now.'}
        </Notice>
        <p>
          <a class="button" href={`/machines/${done.mac}`}>Open {done.hostname}</a> <a href="/">Back to the machines</a>
        </p>
      </section>
    );
  }
  if (!admin) {
    return (
      <section class="wizard">
        {head}
        <Notice kind="info">You are signed in with a viewer token: viewers can see everything but cannot approve.</Notice>
      </section>
    );
  }
  if (!can(m, 'approve')) {
    return (
      <section class="wizard">
        {head}
        <Notice kind="info">
          Only an inventoried machine (one whose discovery agent has reported) can be approved; this one is {m.state}.
        </Notice>
      </section>
    );
  }

  const disks = inv?.disks ?? [];
  const profileName = form.profile || cluster?.default_profile || '';
  return (
    <section class="wizard" data-step={step}>
      {head}
      <ol class="steps" aria-label="Approval steps">
        {STEPS.map((s, i) => (
          <li key={s} aria-current={s === step ? 'step' : undefined} class={STEPS.indexOf(step) > i ? 'done' : ''}>
            <span class="num">{i + 1}</span> {stepTitles[s]}
          </li>
        ))}
      </ol>
      <form class="card" onSubmit={next} noValidate aria-labelledby="step-title">
        <h2 id="step-title">{stepTitles[step]}</h2>
        {general.length > 0 && (
          <Notice>
            {general.map((g, i) => <div key={i}>{g}</div>)}
          </Notice>
        )}

        {step === 'token' && (
          <>
            {m.declared && (
              <Notice kind="info">
                <span data-declared>Declared in Git: {m.declared.origin}.</span> The settings below come from it; type the
                console token to approve.
              </Notice>
            )}
            <RegistrationsHint m={m} />
            <Field
              label="Registration token"
              name="token"
              error={errors.token}
              hint="Shown in large type on the machine's console (FOUNDRY-XXXX-XXXX-XXXX). Case, spaces and dashes do not matter."
            >
              {(p) => (
                <input
                  {...p}
                  class="token-input mono"
                  name="token"
                  autoComplete="off"
                  spellcheck={false}
                  placeholder="FOUNDRY-XXXX-XXXX-XXXX"
                  value={form.token}
                  onInput={(e) => set('token', e.currentTarget.value)}
                  autoFocus
                />
              )}
            </Field>
            <Field
              label="Cluster"
              name="cluster"
              error={errors.cluster}
              hint={clusters.length === 0 ? <>No cluster exists yet: <a href="/clusters">create one</a> first.</> : cluster?.description}
            >
              {(p) => (
                <select {...p} name="cluster" value={form.cluster} onChange={(e) => set('cluster', e.currentTarget.value)}>
                  <option value="">choose a cluster…</option>
                  {clusters.map((c) => (
                    <option key={c.name} value={c.name}>{c.name}</option>
                  ))}
                </select>
              )}
            </Field>
          </>
        )}

        {step === 'review' && <ReviewStep m={m} inv={inv} matched={matched} />}

        {step === 'settings' && (
          <SettingsStep form={form} set={set} errors={errors} disks={disks} profiles={profiles} cluster={cluster} segment={segment} />
        )}

        {step === 'confirm' && (
          <dl class="kv">
            <div><dt>Machine</dt><dd class="mono">{m.mac}</dd></div>
            <div><dt>Cluster</dt><dd>{form.cluster}</dd></div>
            <div><dt>Profile</dt><dd>{profileName || <span class="field-error">none: choose one</span>}</dd></div>
            <div><dt>Host name</dt><dd>{lowerHostname(form.hostname)}</dd></div>
            <div><dt>Disk</dt><dd class="mono">{form.disk || 'none'}</dd></div>
            <div><dt>SSH keys</dt><dd>{toRequest(form).ssh_keys?.length ?? 0}</dd></div>
            <div><dt>BMC user</dt><dd>{form.bmcUser || cluster?.bmc_user ? 'created by the discovery OS' : 'no'}</dd></div>
            <div><dt>Network</dt><dd>{form.mode === 'static' ? `static ${form.address}${form.gateway ? ` via ${form.gateway}` : ''}` : 'DHCP'}{form.dns && `, DNS ${form.dns}`}</dd></div>
          </dl>
        )}

        <div class="actions">
          {step !== 'token' && (
            <button type="button" class="secondary" onClick={back} disabled={busy}>Back</button>
          )}
          <button type="submit" disabled={busy} data-action={step === 'confirm' ? 'approve' : 'next'}>
            {busy ? 'Working…' : step === 'token' ? 'Verify token' : step === 'confirm' ? 'Approve' : 'Next'}
          </button>
        </div>
      </form>
    </section>
  );
}

/**
 * RegistrationsHint tells, before the token is typed, that the MAC has
 * more than one registration and that the token picks the one approved.
 */
function RegistrationsHint({ m }: { m: Machine }) {
  const regs = registrationsOf(m);
  if (regs.length < 2) return null;
  const list = regs.map((r) => `${shortID(r.id)} from ${r.ip || 'an unknown address'}${r.active ? '' : ' (silent)'}`).join(', ');
  return (
    <Notice kind={m.mac_conflict ? 'error' : 'info'}>
      <span data-registrations={regs.length}>
        {m.mac_conflict ? <strong>MAC conflict: possible MAC spoofing. </strong> : null}
        {m.mac} has {regs.length} registrations ({list}). The token decides which registration is approved: type the token shown
        on the console of the machine you can see, and only that registration's agent will install it.
      </span>
    </Notice>
  );
}
