import { fireEvent, screen, waitFor, cleanup } from '@testing-library/preact';
import { afterEach, describe, expect, it } from 'vitest';
import { ApprovePage } from './approve';
import { fakeAPI, json, renderAt, type Handler } from '../test/harness';
import { machine, registration } from '../test/fixtures';

const mac = '52:54:00:12:34:56';
const inventory = {
  schema_version: 1,
  system: { vendor: 'QEMU', product: 'Standard PC' },
  cpu: { model: 'QEMU Virtual CPU', cores: 2, threads: 2 },
  memory: { total_bytes: 2147483648 },
  disks: [
    { name: 'sdb', path: '/dev/sdb', size_bytes: 2 ** 30, removable: true, by_path: 'pci-0000:00:1d.0-usb-0:1:1.0-scsi-0:0:0:0' },
    { name: 'vda', path: '/dev/vda', size_bytes: 8 * 2 ** 30, by_path: 'pci-0000:00:04.0' },
  ],
  nics: [{ name: 'ens3', mac, link: true, speed_mbps: 1000 }],
};

function routes(extra: Record<string, Handler> = {}): Record<string, Handler> {
  return {
    'GET /api/v1/machines/{mac}': () => json(200, machine({ mac, hostname: 'discovered-123456', inventory, segment: 'lab' })),
    'GET /api/v1/clusters': () => json(200, [{ name: 'rack1', default_profile: 'debian', created_at: '', updated_at: '' }]),
    'GET /api/v1/profiles': () => json(200, [{ name: 'debian', kind: 'netboot', created_at: '', updated_at: '' }]),
    'GET /api/v1/segments': () => json(200, [{ name: 'lab', subnet: '10.77.0.0/24', mode: 'dhcp', discovery: true, router: '10.77.0.1' }]),
    ...extra,
  };
}

const page = [{ path: '/machines/:mac/approve', component: ApprovePage }];
const fieldError = (name: string) => document.querySelector(`[data-error-for="${name}"]`)?.textContent ?? '';
const input = (label: string) => screen.getByLabelText(label) as HTMLInputElement;

afterEach(cleanup);

async function typeToken(token: string) {
  await screen.findByLabelText('Registration token');
  fireEvent.input(input('Registration token'), { target: { value: token } });
}

describe('approval wizard', () => {
  it('refuses a malformed token without asking the appliance', async () => {
    const api = fakeAPI(routes());
    renderAt(`/machines/${mac}/approve`, page);
    await typeToken('FOUNDRY-12');
    fireEvent.click(screen.getByRole('button', { name: 'Verify token' }));
    await waitFor(() => expect(fieldError('token')).toBe('not a token like FOUNDRY-ABCD-EFGH-JKLM'));
    expect(input('Registration token').getAttribute('aria-invalid')).toBe('true');
    expect(api.calls.filter((c) => c.method === 'POST')).toHaveLength(0);
  });

  it('shows the appliance’s refusal of a wrong token on the token field and stays on the step', async () => {
    const api = fakeAPI(
      routes({
        'POST /api/v1/machines/{mac}/verify-token': () =>
          json(422, {
            title: 'Unprocessable Entity', status: 422, detail: 'wrong registration token (attempt 1 of 5)',
            errors: [{ location: 'body.token', message: 'wrong registration token (attempt 1 of 5)' }],
          }),
      }),
    );
    renderAt(`/machines/${mac}/approve`, page);
    await typeToken('foundry abcd efgh jk23');
    fireEvent.click(screen.getByRole('button', { name: 'Verify token' }));
    await waitFor(() => expect(fieldError('token')).toBe('wrong registration token (attempt 1 of 5)'));
    expect(document.querySelector('.wizard')?.getAttribute('data-step')).toBe('token');
    // The token was sent in canonical form, with the path's MAC.
    expect(api.calls.find((c) => c.method === 'POST')).toEqual({
      method: 'POST', path: `/api/v1/machines/${mac}/verify-token`, body: { token: 'FOUNDRY-ABCD-EFGH-JK23' },
    });
  });

  it('walks every step and maps a settings refusal back onto its field', async () => {
    let approvals = 0;
    const api = fakeAPI(
      routes({
        'POST /api/v1/machines/{mac}/verify-token': () => json(200, { valid: true, expires_at: '2026-01-01T01:00:00Z' }),
        'POST /api/v1/machines/{mac}/approve': () => {
          approvals++;
          if (approvals === 1)
            return json(422, {
              status: 422, detail: 'approval refused: already used by machine 52:54:00:00:00:09',
              errors: [{ location: 'body.hostname', message: 'already used by machine 52:54:00:00:00:09' }],
            });
          return json(200, machine({ mac, hostname: 'node-02', state: 'ready', temporary: false }));
        },
      }),
    );
    renderAt(`/machines/${mac}/approve`, page);
    await typeToken('FOUNDRY-ABCD-EFGH-JK23');
    // The only cluster is preselected.
    await waitFor(() => expect((screen.getByLabelText('Cluster') as HTMLSelectElement).value).toBe('rack1'));
    fireEvent.click(screen.getByRole('button', { name: 'Verify token' }));
    await screen.findByText('The token is right. Check that this is the machine you expect:');
    fireEvent.click(screen.getByRole('button', { name: 'Next' }));

    // Settings: the default disk is the fixed one, not the USB stick.
    await screen.findByLabelText('Host name');
    const vda = document.querySelector('input[name="disk"][value="/dev/disk/by-path/pci-0000:00:04.0"]') as HTMLInputElement;
    expect(vda.checked).toBe(true);
    fireEvent.input(input('Host name'), { target: { value: 'bad_name' } });
    fireEvent.click(screen.getByRole('button', { name: 'Next' }));
    await waitFor(() => expect(fieldError('hostname')).toContain('is not a letter, digit'));
    fireEvent.input(input('Host name'), { target: { value: 'node-01' } });
    fireEvent.click(screen.getByLabelText('Static address', { exact: false }));
    fireEvent.input(await screen.findByLabelText('Address/prefix'), { target: { value: '10.78.0.5/24' } });
    fireEvent.click(screen.getByRole('button', { name: 'Next' }));
    await waitFor(() => expect(fieldError('network.address')).toBe("outside the segment's subnet 10.77.0.0/24"));
    fireEvent.input(input('Address/prefix'), { target: { value: '10.77.0.5/24' } });
    fireEvent.click(screen.getByRole('button', { name: 'Next' }));

    // Confirm → the API refuses the host name → back on settings with the error there.
    fireEvent.click(await screen.findByRole('button', { name: 'Approve' }));
    await waitFor(() => expect(fieldError('hostname')).toBe('already used by machine 52:54:00:00:00:09'));
    expect(document.querySelector('.wizard')?.getAttribute('data-step')).toBe('settings');
    fireEvent.input(input('Host name'), { target: { value: 'node-02' } });
    fireEvent.click(screen.getByRole('button', { name: 'Next' }));
    fireEvent.click(await screen.findByRole('button', { name: 'Approve' }));
    await screen.findByText('Approved.', { exact: false });
    expect(document.querySelector('[data-state="ready"]')).not.toBeNull();
    const sent = api.calls.filter((c) => c.path.endsWith('/approve')).at(-1)!.body;
    expect(sent).toEqual({
      token: 'FOUNDRY-ABCD-EFGH-JK23', cluster: 'rack1', hostname: 'node-02',
      disk: '/dev/disk/by-path/pci-0000:00:04.0', network: { mode: 'static', address: '10.77.0.5/24' },
    });
  });

  it('says the token picks the registration when the MAC has several, then shows which one matched', async () => {
    const genuine = registration({ id: 'GENUINE1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', ip: '10.77.0.5', summary: { vendor: 'Supermicro', serial: 'S1' } });
    const spoofer = registration({ id: 'SPOOFER1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', ip: '10.77.0.66', summary: { vendor: 'QEMU', model: 'Standard PC' } });
    fakeAPI(
      routes({
        // Until approval the record shows the latest report: the spoofer's.
        'GET /api/v1/machines/{mac}': () =>
          json(200, machine({ mac, inventory, segment: 'lab', mac_conflict: true, registrations: [genuine, spoofer], summary: { vendor: 'QEMU', model: 'Standard PC' } })),
        'POST /api/v1/machines/{mac}/verify-token': () => json(200, { valid: true, expires_at: '2026-01-01T01:00:00Z', registration: genuine.id }),
      }),
    );
    renderAt(`/machines/${mac}/approve`, page);
    await typeToken('FOUNDRY-ABCD-EFGH-JK23');
    const hint = document.querySelector('[data-registrations]')?.textContent ?? '';
    expect(hint).toContain('MAC conflict: possible MAC spoofing.');
    expect(hint).toContain('2 registrations (GENUINE1 from 10.77.0.5, SPOOFER1 from 10.77.0.66)');
    expect(hint).toContain('The token decides which registration is approved');
    fireEvent.click(screen.getByRole('button', { name: 'Verify token' }));
    await screen.findByText('The token is right. Check that this is the machine you expect:');
    const hit = document.querySelector('.matched-registration');
    expect(hit?.getAttribute('data-registration')).toBe(genuine.id);
    expect(hit?.textContent).toContain('The token matches registration GENUINE1 from 10.77.0.5');
    expect(hit?.textContent).toContain('Supermicro · serial S1');
    // The hardware below is the spoofer's report: the page says so.
    expect(hit?.textContent).toContain("The hardware below is another registration's report");
  });

  it('says nothing about registrations for a machine with one', async () => {
    fakeAPI(
      routes({
        'GET /api/v1/machines/{mac}': () => json(200, machine({ mac, inventory, segment: 'lab', registrations: [registration({ id: 'ONLYONE1xxxx' })] })),
        'POST /api/v1/machines/{mac}/verify-token': () => json(200, { valid: true, expires_at: '2026-01-01T01:00:00Z', registration: 'ONLYONE1xxxx' }),
      }),
    );
    renderAt(`/machines/${mac}/approve`, page);
    await typeToken('FOUNDRY-ABCD-EFGH-JK23');
    expect(document.querySelector('[data-registrations]')).toBeNull();
    fireEvent.click(screen.getByRole('button', { name: 'Verify token' }));
    await screen.findByText('The token is right. Check that this is the machine you expect:');
    expect(document.querySelector('.matched-registration')?.textContent).not.toContain('another registration');
  });

  it('offers a viewer no way to approve', async () => {
    fakeAPI(routes());
    renderAt(`/machines/${mac}/approve`, page, 'viewer');
    await screen.findByText('viewers can see everything but cannot approve', { exact: false });
    expect(screen.queryByLabelText('Registration token')).toBeNull();
    expect(screen.queryByRole('button', { name: 'Verify token' })).toBeNull();
  });

  it('fills the form from a declaration in Git and says where it came from', async () => {
    const declared = {
      cluster: 'rack1', profile: 'debian', hostname: 'node-07', network: 'static' as const, address: '10.77.0.50/24',
      origin: 'declared in hardware/node-07.yaml by Dana Ops <dana@example.org> (commit 0123456789ab)',
    };
    fakeAPI(
      routes({
        'GET /api/v1/machines/{mac}': () => json(200, machine({ mac, hostname: 'discovered-123456', inventory, segment: 'lab', declared })),
      }),
    );
    renderAt(`/machines/${mac}/approve`, page);
    await typeToken('FOUNDRY-ABCD-EFGH-JK23');
    expect(document.querySelector('[data-declared]')?.textContent).toContain('Dana Ops <dana@example.org>');
    expect((screen.getByLabelText('Cluster') as HTMLSelectElement).value).toBe('rack1');
  });
});
