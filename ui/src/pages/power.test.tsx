import { cleanup, fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { useState } from 'preact/hooks';
import { afterEach, describe, expect, it } from 'vitest';
import type { Machine } from '../api/types';
import { fakeAPI, json, renderAt } from '../test/harness';
import { machine } from '../test/fixtures';
import { PowerCard } from './power';

afterEach(cleanup);

const mac = '52:54:00:aa:00:07';
const bmc = { protocol: 'ipmi' as const, address: '10.77.1.21', username: 'foundry', credential: true, source: 'agent' as const, updated_at: '2026-01-01T00:00:00Z' };
const ready = machine({ mac, state: 'ready', hostname: 'node-07', bmc });
const on = { state: 'on' as const, checked_at: new Date().toISOString() };

function page(m: Machine, admin = true) {
  function Page() {
    const [cur, setCur] = useState(m);
    return <PowerCard m={cur} admin={admin} now={Date.now()} onChanged={setCur} />;
  }
  return [{ path: '/', component: Page }];
}

function value(label: string): string {
  const dt = within(document.querySelector('.power') as HTMLElement).getByText(label, { selector: 'dt' });
  return dt.nextElementSibling?.textContent ?? '';
}

describe('power card', () => {
  it('shows the power state and the BMC, never a password, and no actions to a viewer', async () => {
    fakeAPI({ 'GET /api/v1/machines/{mac}/power': () => json(200, on) });
    renderAt('/', page(ready, false), 'viewer');
    await waitFor(() => expect(value('State')).toBe('on'));
    expect(value('BMC')).toBe('ipmi 10.77.1.21');
    expect(value('Password')).toBe('stored, encrypted (never shown)');
    expect(value('Source')).toBe('created by the discovery OS');
    expect(screen.queryByRole('button', { name: 'Power cycle…' })).toBeNull();
    expect(screen.getByRole('button', { name: 'Refresh' })).toBeTruthy();
  });

  it('power-cycles after a confirmation and shows what the BMC answered', async () => {
    const api = fakeAPI({
      'GET /api/v1/machines/{mac}/power': () => json(200, { state: 'off', checked_at: on.checked_at }),
      'POST /api/v1/machines/{mac}/power': () => json(200, on),
    });
    renderAt('/', page(ready));
    await waitFor(() => expect(value('State')).toBe('off'));
    fireEvent.click(screen.getByRole('button', { name: 'Power cycle…' }));
    const dialog = await screen.findByRole('dialog', { name: /Power cycle/ });
    fireEvent.click(within(dialog).getByRole('button', { name: 'Confirm' }));
    await waitFor(() => expect(value('State')).toBe('on'));
    expect(api.calls.filter((c) => c.method === 'POST')).toEqual([{ method: 'POST', path: `/api/v1/machines/${mac}/power`, body: { action: 'cycle' } }]);
  });

  it('shows a BMC refusal in the BMC’s own words', async () => {
    const words = 'Error: Unable to establish IPMI v2 / RMCP+ session';
    let failed = false;
    fakeAPI({
      'GET /api/v1/machines/{mac}/power': () =>
        json(200, failed ? { ...on, error: words, error_at: new Date(Date.now() + 1000).toISOString() } : on),
      'POST /api/v1/machines/{mac}/pxe-next': () => {
        failed = true;
        return json(502, { status: 502, title: 'Bad Gateway', detail: `the BMC of ${mac} refused pxe-next: ${words}` });
      },
    });
    renderAt('/', page(ready));
    await waitFor(() => expect(value('State')).toBe('on'));
    fireEvent.click(screen.getByRole('button', { name: 'Next boot: network…' }));
    fireEvent.click(within(await screen.findByRole('dialog', { name: /network boot/ })).getByRole('button', { name: 'Confirm' }));
    await waitFor(() => expect(document.querySelector('.bmc-error')?.textContent).toBe(words));
    expect(screen.getAllByText(/RMCP\+ session/).length).toBeGreaterThan(1);
  });

  it('enters a BMC by hand, offering the address the discovery OS saw', async () => {
    const bare = machine({ mac, state: 'ready', hostname: 'node-07', inventory: { schema_version: 1, bmc: { interface: 'ipmi', type: 'KCS', address: '10.77.1.99' } } as unknown as Machine['inventory'] });
    const api = fakeAPI({
      'PUT /api/v1/machines/{mac}/bmc': ({ body }) => {
        const b = body as { address: string; username: string };
        return json(200, { ...bare, bmc: { protocol: 'ipmi', address: b.address, username: b.username, credential: true, source: 'admin', updated_at: on.checked_at } });
      },
      'GET /api/v1/machines/{mac}/power': () => json(200, { state: 'unknown' }),
    });
    renderAt('/', page(bare));
    expect(screen.getByText(/saw the BMC at 10.77.1.99 \(IPMI, KCS\)/)).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Enter BMC…' }));
    const dialog = await screen.findByRole('dialog', { name: 'Edit BMC of node-07' });
    expect((within(dialog).getByLabelText('Address') as HTMLInputElement).value).toBe('10.77.1.99');
    fireEvent.input(within(dialog).getByLabelText('User'), { target: { value: 'root' } });
    fireEvent.input(within(dialog).getByLabelText('Password'), { target: { value: 'calvin' } });
    fireEvent.click(within(dialog).getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(value('Source')).toBe('entered by hand'));
    expect(api.calls.find((c) => c.method === 'PUT')?.body).toEqual({ protocol: 'ipmi', address: '10.77.1.99', username: 'root', password: 'calvin' });
    expect(document.body.textContent).not.toContain('calvin');
  });
});
