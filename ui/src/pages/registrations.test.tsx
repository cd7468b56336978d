import { cleanup, fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { useState } from 'preact/hooks';
import { afterEach, describe, expect, it } from 'vitest';
import type { Machine } from '../api/types';
import { fakeAPI, json, renderAt } from '../test/harness';
import { machine, registration } from '../test/fixtures';
import { ConflictBanner, RegistrationsCard } from './registrations';

afterEach(cleanup);

const mac = '52:54:00:aa:00:09';
const now = Date.parse('2026-01-01T01:30:00Z');
const genuine = registration({ id: 'GENUINE1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', ip: '10.77.0.5', summary: { vendor: 'Supermicro', serial: 'S314159', disks: 3, disk_bytes: 2 ** 40 } });
const spoofer = registration({ id: 'SPOOFER1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', ip: '10.77.0.66', summary: { vendor: 'QEMU', serial: 'X' } });
const conflicted = machine({ mac, hostname: 'discovered-aa0009', mac_conflict: true, registrations: [genuine, spoofer] });

// page holds the machine as the machine page does and takes what the card answers.
function page(m: Machine) {
  function Page() {
    const [cur, setCur] = useState(m);
    return (
      <>
        <ConflictBanner m={cur} admin />
        <RegistrationsCard m={cur} admin now={now} onChanged={setCur} />
      </>
    );
  }
  return [{ path: '/', component: Page }];
}

const regRows = () => [...document.querySelectorAll('tr[data-registration]')].map((r) => r.getAttribute('data-registration'));

describe('MAC conflict on the machine page', () => {
  it('explains the conflict and lists every registration with what it reported', () => {
    fakeAPI({});
    renderAt('/', page(conflicted));
    const banner = screen.getByRole('alert');
    expect(banner.textContent).toContain('MAC conflict: possible MAC spoofing.');
    expect(banner.textContent).toContain(`2 hosts answer for ${mac} (from 10.77.0.5, 10.77.0.66)`);
    expect(banner.textContent).toContain('token shown on the console of the machine you can see');
    expect(banner.textContent).toContain('End the registrations you do not recognise');

    expect(regRows()).toEqual([genuine.id, spoofer.id]);
    const row = within(document.querySelector(`tr[data-registration="${genuine.id}"]`) as HTMLElement);
    expect(row.getByText('GENUINE1')).toBeTruthy(); // the short ID, as the audit log names it
    expect(row.getByText('10.77.0.5')).toBeTruthy();
    expect(row.getByText('active')).toBeTruthy();
    expect(row.getByText('Supermicro · serial S314159 · 3 disks, 1 TiB')).toBeTruthy();
    expect(document.querySelector(`tr[data-registration="${genuine.id}"] [data-token]`)?.getAttribute('data-token')).toBe('valid');
  });

  it('ends a registration after confirmation and shows the answer: no conflict left', async () => {
    const api = fakeAPI({
      'DELETE /api/v1/machines/{mac}/registrations/{id}': ({ path }) => {
        expect(path).toBe(`/api/v1/machines/${mac}/registrations/${spoofer.id}`);
        return json(200, { ...conflicted, mac_conflict: false, registrations: [genuine], revision: 2 });
      },
    });
    renderAt('/', page(conflicted));
    fireEvent.click(screen.getByRole('button', { name: 'End registration SPOOFER1' }));
    // Nothing is ended before the confirmation, which says what ending does.
    expect(api.calls).toHaveLength(0);
    const dialog = within(document.querySelector('dialog[open]') as HTMLElement);
    expect(dialog.getByText(/^End registration SPOOFER1 from 10\.77\.0\.66\? Its agent can make no further call/)).toBeTruthy();
    fireEvent.click(dialog.getByRole('button', { name: 'End registration' }));
    await waitFor(() => expect(regRows()).toEqual([genuine.id]));
    expect(api.calls.map((c) => c.method)).toEqual(['DELETE']);
    expect(screen.queryByRole('alert')).toBeNull();
    await waitFor(() => expect(document.querySelector('dialog[open]')).toBeNull());
  });

  it('keeps the dialog open with the refusal when the registration is gone', async () => {
    fakeAPI({
      'DELETE /api/v1/machines/{mac}/registrations/{id}': () =>
        json(404, { title: 'Not Found', status: 404, detail: `machine ${mac} has no live registration SPOOFER1` }),
    });
    renderAt('/', page(conflicted));
    fireEvent.click(screen.getByRole('button', { name: 'End registration SPOOFER1' }));
    fireEvent.click(within(document.querySelector('dialog[open]') as HTMLElement).getByRole('button', { name: 'End registration' }));
    await waitFor(() => expect(document.querySelector('dialog[open] .notice-error')?.textContent).toContain('no live registration'));
    expect(regRows()).toHaveLength(2);
  });

  it('offers viewers no End button and says who acts', () => {
    fakeAPI({});
    function Viewer() {
      return (
        <>
          <ConflictBanner m={conflicted} admin={false} />
          <RegistrationsCard m={conflicted} admin={false} now={now} onChanged={() => {}} />
        </>
      );
    }
    renderAt('/', [{ path: '/', component: Viewer }], 'viewer');
    expect(screen.queryAllByRole('button', { name: /End registration/ })).toHaveLength(0);
    expect(screen.getByRole('alert').textContent).toContain('An administrator approves with the token');
  });

  it('counts hosts by registration, not by address (two hosts behind one NAT or relay)', () => {
    fakeAPI({});
    const same = machine({ mac, mac_conflict: true, registrations: [{ ...genuine, ip: '10.77.0.5' }, { ...spoofer, ip: '10.77.0.5' }] });
    renderAt('/', page(same));
    expect(screen.getByRole('alert').textContent).toContain(`2 hosts answer for ${mac} (from 10.77.0.5)`);
  });

  it('shows no banner for one registration, nor for a silent one a reboot left behind', () => {
    fakeAPI({});
    const rebooted = machine({ mac, mac_conflict: false, registrations: [{ ...genuine, active: false }, spoofer] });
    renderAt('/', page(rebooted));
    expect(screen.queryByRole('alert')).toBeNull();
    expect(regRows()).toHaveLength(2);
    expect(screen.getByText('silent')).toBeTruthy();
  });
});
