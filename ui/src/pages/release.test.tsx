import { cleanup, fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { afterEach, describe, expect, it } from 'vitest';
import type { Machine } from '../api/types';
import { fakeAPI, json, renderAt, type Handler } from '../test/harness';
import { machine, registration, sse, streamOf } from '../test/fixtures';
import { MachinePage } from './machine';
import { MachinesPage } from './machines';

afterEach(cleanup);

const mac = '52:54:00:aa:00:10';
const approvedAt = '2026-01-01T00:00:00Z';
const approval = { approved_by: 'token:admin', approved_at: approvedAt, network: { mode: 'dhcp' as const }, disk: '/dev/disk/by-path/pci-0000:00:1f.2-ata-1' };
const hostKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl root@node-10';
const ready = machine({
  mac, state: 'ready', hostname: 'node-10', temporary: false, cluster: 'c1', profile: 'net', ip: '10.77.0.110', approval,
  installed: true, ready_at: '2026-01-01T00:04:12Z', deploy_seconds: 252,
  first_boot: { at: '2026-01-01T00:04:12Z', hostname: 'node-10', ssh_host_keys: [hostKey] },
});

/**
 * show renders the machine page of m against a fake appliance whose
 * machine is what the last action answered; routes add to or replace its
 * answers.
 */
function show(m: Machine, routes: Record<string, Handler> = {}, role: 'admin' | 'viewer' = 'admin') {
  const state = { cur: m };
  const api = fakeAPI({
    'GET /api/v1/machines': () => json(200, { items: [state.cur], total: 1, counts: {} }),
    'GET /api/v1/machines/{mac}': () => json(200, state.cur),
    'GET /api/v1/machines/{mac}/boot-script': () => json(404, { status: 404, title: 'Not Found' }),
    'GET /api/v1/audit': () => json(200, { items: [] }),
    'GET /api/v1/events': ({ signal }) => {
      const s = streamOf();
      signal?.addEventListener('abort', () => s.fail(new DOMException('aborted', 'AbortError')));
      s.push(sse([{ event: 'ping', data: { time: approvedAt } }]));
      return new Response(s.body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
    },
    ...Object.fromEntries(
      Object.entries(routes).map(([k, h]) => [k, async (req: Parameters<Handler>[0]) => {
        const res = await h(req);
        if (res.ok && req.method === 'POST') state.cur = (await res.clone().json()) as Machine;
        return res;
      }]),
    ),
  });
  renderAt(`/machines/${m.mac}`, [{ path: '/machines/:mac', component: MachinePage }], role, true);
  return { api, state };
}

const actionButtons = () =>
  [...document.querySelectorAll('[aria-label="Machine actions"] [data-action]')].map((b) => b.getAttribute('data-action'));
const posts = (api: ReturnType<typeof fakeAPI>) => api.calls.filter((c) => c.method === 'POST');

describe('release, redeploy and bind on the machine page', () => {
  it('offers exactly the actions the API lists', async () => {
    show(ready);
    await screen.findByRole('heading', { name: /node-10/ });
    expect(actionButtons()).toEqual(['redeploy', 'release']);
    cleanup();
    show(machine({ mac, state: 'approved', hostname: 'node-10', approval, registrations: [] }));
    await screen.findByRole('heading', { name: /node-10/ });
    expect(actionButtons()).toEqual(['bind', 'release']);
    cleanup();
    // The page follows `actions`, not its own idea of the state's rules.
    show({ ...ready, actions: ['delete'] });
    await screen.findByRole('heading', { name: /node-10/ });
    expect(actionButtons()).toEqual([]);
    cleanup();
    show(ready, {}, 'viewer');
    await screen.findByRole('heading', { name: /node-10/ });
    expect(actionButtons()).toEqual([]);
  });

  it('shows the deploy time and the first boot’s host keys as known_hosts lines', async () => {
    show(ready);
    await waitFor(() => expect(document.querySelector('.known-hosts')?.textContent).toBe(`node-10,10.77.0.110 ${hostKey}`));
    expect(document.querySelector('[data-deploy-time]')?.textContent).toBe('4 min 12 s from approval to ready');
    expect(document.querySelector('.install-waiting, [data-installed]')).toBeNull();
  });

  it('says an installed machine waits for its first boot report', async () => {
    show(machine({ mac, state: 'provisioning', hostname: 'node-10', approval, progress: 100, installed: true, registrations: [registration({ bound: true })] }));
    await waitFor(() => expect(document.querySelector('.status-big .install-waiting')?.textContent).toBe('installed — waiting for the first boot report'));
    expect(document.querySelector('[data-installed="waiting"]')?.textContent).toContain('ready when the installed system reports its first boot');
    expect(document.querySelector('.status-big progress')).toBeNull();
    expect(document.querySelector('.known-hosts')).toBeNull();
    expect(document.querySelector('[data-deploy-time]')).toBeNull();
  });

  it('releases after a confirmation that explains the wipe, every byte when asked', async () => {
    const released = { ...ready, state: 'discovered', wipe: { full: true }, registrations: [], revision: 2, message: 'released: the disks are wiped at the next discovery boot' } as Machine;
    const { api } = show(ready, { 'POST /api/v1/machines/{mac}/release': () => json(200, { ...released, actions: ['delete'] }) });
    fireEvent.click(await screen.findByRole('button', { name: 'Release…' }));
    const dialog = await screen.findByRole('dialog', { name: 'Release machine' });
    expect(dialog.textContent).toContain('everything on those disks is lost');
    expect(dialog.textContent).toContain('the partition tables, signatures and the first and last MiB of every fixed disk');
    fireEvent.click(within(dialog).getByLabelText('Wipe every byte'));
    expect(dialog.textContent).toContain('wipes every byte of every fixed disk');
    fireEvent.click(within(dialog).getByRole('button', { name: 'Release and wipe every byte' }));
    await waitFor(() => expect(screen.queryByRole('dialog', { name: 'Release machine' })).toBeNull());
    expect(posts(api)).toEqual([{ method: 'POST', path: `/api/v1/machines/${mac}/release`, body: { full: true } }]);
    const notice = document.querySelector('.wipe-pending');
    expect(notice?.textContent).toContain('Release pending: disks are wiped at the next discovery boot (every byte of every fixed disk)');
    expect(notice?.textContent).toContain('No registration has wiped yet');
    // The report of the system being wiped is not shown any more.
    expect(document.querySelector('.known-hosts')).toBeNull();
    expect(actionButtons()).toEqual([]);
  });

  it('asks for the drives’ own secure erase and shows it pending', async () => {
    const released = { ...ready, state: 'discovered', wipe: { full: false, secure_erase: true }, registrations: [], revision: 2, message: 'released' } as Machine;
    const { api } = show(ready, { 'POST /api/v1/machines/{mac}/release': () => json(200, { ...released, actions: ['delete'] }) });
    fireEvent.click(await screen.findByRole('button', { name: 'Release…' }));
    const dialog = await screen.findByRole('dialog', { name: 'Release machine' });
    fireEvent.click(within(dialog).getByLabelText('Secure erase'));
    expect(dialog.textContent).toContain("wipes every fixed disk with the drive's own secure erase");
    fireEvent.click(within(dialog).getByRole('button', { name: 'Release and secure-erase' }));
    await waitFor(() => expect(screen.queryByRole('dialog', { name: 'Release machine' })).toBeNull());
    expect(posts(api)).toEqual([{ method: 'POST', path: `/api/v1/machines/${mac}/release`, body: { full: false, secure_erase: true } }]);
    const notice = document.querySelector('.wipe-pending');
    expect(notice?.getAttribute('data-wipe')).toBe('secure');
    expect(notice?.textContent).toContain("the drive's own secure erase");
  });

  it('names the registration that wiped: that one can be approved', async () => {
    const wiped = registration({ id: 'WIPED001xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', wiped_at: '2026-01-01T01:00:00Z' });
    show(machine({ mac, state: 'inventoried', hostname: 'node-10', wipe: { full: false }, registrations: [registration(), wiped] }));
    await waitFor(() => expect(document.querySelector('.wipe-pending')?.textContent).toContain('Wiped by registration WIPED001: approve it with the token its console shows'));
    expect(document.querySelector(`tr[data-registration="${wiped.id}"]`)?.textContent).toContain('disks wiped');
  });

  it('redeploys with a chosen profile, explains what follows, then binds the new boot', async () => {
    const redeployed = { ...ready, state: 'approved', profile: 'img', registrations: [], first_boot: undefined, ready_at: undefined, deploy_seconds: undefined, installed: false, revision: 2 } as Machine;
    const fresh = registration({ id: 'NEWBOOT1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' });
    const { api } = show(ready, {
      'GET /api/v1/profiles': () => json(200, [
        { name: 'net', kind: 'netboot', created_at: approvedAt, updated_at: approvedAt },
        { name: 'img', kind: 'image', image: 'debian-12', created_at: approvedAt, updated_at: approvedAt },
      ]),
      'POST /api/v1/machines/{mac}/redeploy': () => json(200, { ...redeployed, actions: ['rediscover', 'release', 'bind', 'delete'] }),
      'POST /api/v1/machines/{mac}/bind': ({ body }) =>
        (body as { token: string }).token === 'FOUNDRY-ABCD-EFGH-JK23'
          ? json(200, { ...redeployed, registrations: [{ ...fresh, bound: true }], revision: 3, actions: ['rediscover', 'release', 'bind', 'delete'] })
          : json(422, { status: 422, title: 'Unprocessable Entity', detail: 'bind refused: wrong registration token (attempt 1 of 5)', errors: [{ location: 'body.token', message: 'wrong registration token (attempt 1 of 5)' }] }),
    });
    fireEvent.click(await screen.findByRole('button', { name: 'Redeploy…' }));
    const dialog = await screen.findByRole('dialog', { name: 'Redeploy machine' });
    const select = within(dialog).getByLabelText('Profile') as HTMLSelectElement;
    await waitFor(() => expect(select.options.length).toBe(2));
    expect(select.value).toBe('net');
    expect(dialog.querySelector('[data-next]')?.textContent).toContain('ready at once');
    fireEvent.change(select, { target: { value: 'img' } });
    expect(dialog.querySelector('[data-next]')?.textContent).toContain('boot the machine into discovery (power-cycle it) and bind that boot');
    fireEvent.click(within(dialog).getByRole('button', { name: 'Redeploy' }));
    await waitFor(() => expect(document.querySelector('.bind-pending')?.textContent).toContain('Waiting for a new boot.'));
    expect(actionButtons()).toEqual(['bind', 'release']);

    fireEvent.click(screen.getByRole('button', { name: 'Bind new boot…' }));
    const bind = await screen.findByRole('dialog', { name: 'Bind a new boot' });
    const input = within(bind).getByLabelText('Console token');
    // A malformed token is refused without asking the appliance.
    fireEvent.input(input, { target: { value: 'FOUNDRY-12' } });
    fireEvent.click(within(bind).getByRole('button', { name: 'Bind' }));
    await waitFor(() => expect(bind.querySelector('[data-error-for="token"]')?.textContent).toBe('not a token like FOUNDRY-ABCD-EFGH-JKLM'));
    fireEvent.input(input, { target: { value: 'foundry abcd efgh jk22' } });
    fireEvent.click(within(bind).getByRole('button', { name: 'Bind' }));
    await waitFor(() => expect(bind.querySelector('[data-error-for="token"]')?.textContent).toContain('wrong registration token (attempt 1 of 5)'));
    fireEvent.input(input, { target: { value: 'abcd-efgh-jk23' } });
    fireEvent.click(within(bind).getByRole('button', { name: 'Bind' }));
    await waitFor(() => expect(screen.queryByRole('dialog', { name: 'Bind a new boot' })).toBeNull());
    expect(document.querySelector('.bind-pending')).toBeNull();
    expect(posts(api)).toEqual([
      { method: 'POST', path: `/api/v1/machines/${mac}/redeploy`, body: { profile: 'img' } },
      { method: 'POST', path: `/api/v1/machines/${mac}/bind`, body: { token: 'FOUNDRY-ABCD-EFGH-JK22' } },
      { method: 'POST', path: `/api/v1/machines/${mac}/bind`, body: { token: 'FOUNDRY-ABCD-EFGH-JK23' } },
    ]);
  });
});

describe('release and first boot in the machine list', () => {
  it('says which machine waits for its first boot, how long a deploy took and which wipe is pending', async () => {
    const installing = machine({ mac: '52:54:00:aa:00:21', state: 'provisioning', progress: 100, installed: true });
    const done = { ...ready, mac: '52:54:00:aa:00:22' };
    const released = machine({ mac: '52:54:00:aa:00:23', state: 'discovered', wipe: { full: false } });
    const wiped = machine({ mac: '52:54:00:aa:00:24', state: 'inventoried', wipe: { full: false }, registrations: [registration({ wiped_at: approvedAt })] });
    fakeAPI({
      'GET /api/v1/machines': () => json(200, { items: [installing, done, released, wiped], total: 4, counts: {} }),
      'GET /api/v1/events': ({ signal }) => {
        const s = streamOf();
        signal?.addEventListener('abort', () => s.fail(new DOMException('aborted', 'AbortError')));
        return new Response(s.body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
      },
    });
    renderAt('/', [{ path: '/', component: MachinesPage }], 'admin', true);
    const status = (mac: string) => document.querySelector(`tr[data-mac="${mac}"] .status`)?.textContent ?? '';
    await waitFor(() => expect(status(installing.mac)).toBe('installed — waiting for the first boot report'));
    expect(document.querySelector(`tr[data-mac="${installing.mac}"] progress`)).toBeNull();
    expect(status(done.mac)).toContain('deployed in 4 min 12 s');
    expect(status(released.mac)).toBe('waiting for inventoryrelease pending: disks are wiped at the next discovery boot');
    expect(status(wiped.mac)).toBe('Approve…released: disks wiped, approve it again');
  });
});
