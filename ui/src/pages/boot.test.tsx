import { cleanup, fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { useState } from 'preact/hooks';
import { afterEach, describe, expect, it } from 'vitest';
import type { Machine } from '../api/types';
import { fakeAPI, json, renderAt } from '../test/harness';
import { machine } from '../test/fixtures';
import { BootCard } from './boot';

afterEach(cleanup);

const mac = '52:54:00:aa:00:02';
const ready = machine({ mac, state: 'ready', hostname: 'node-02', menu: { enabled: false, default: 'production' }, uefi_binary: '' });

// page holds the machine as the machine page does and takes what was saved.
function page(m: Machine) {
  function Page() {
    const [cur, setCur] = useState(m);
    return <BootCard m={cur} onSaved={setCur} />;
  }
  return [{ path: '/', component: Page }];
}

/** value reads one row of the card's definition list. */
function value(label: string): string {
  const dt = within(document.querySelector('.boot-settings') as HTMLElement).getByText(label, { selector: 'dt' });
  return dt.nextElementSibling?.textContent ?? '';
}

describe('boot settings card', () => {
  it('shows the settings to a viewer, without a way to change them', () => {
    fakeAPI({});
    const m = { ...ready, menu: { enabled: true, timeout_seconds: 10, default: 'local' as const }, uefi_binary: 'snponly.efi' as const };
    renderAt('/', page(m), 'viewer');
    expect(value('Boot menu')).toBe('on');
    expect(value('Menu timeout')).toBe('10 s');
    expect(value('Menu default')).toBe('Boot from local disk');
    expect(value('UEFI binary')).toBe('snponly.efi');
    expect(document.querySelector('.boot-settings')?.getAttribute('data-menu')).toBe('on');
    expect(screen.queryByRole('button', { name: /Edit boot settings/ })).toBeNull();
  });

  it('names the defaults an unset machine gets', () => {
    fakeAPI({});
    // An appliance that predates boot settings sends no menu at all.
    const old = { ...ready } as Partial<Machine>;
    delete old.menu;
    delete old.uefi_binary;
    renderAt('/', page(old as Machine));
    expect(value('Boot menu')).toBe('off');
    expect(value('Menu timeout')).toBe('appliance default (5 s)');
    expect(value('Menu default')).toBe('Production boot');
    expect(value('UEFI binary')).toBe('the segment’s choice');
  });

  it('lets an admin change them and shows what the API saved', async () => {
    const api = fakeAPI({
      'PUT /api/v1/machines/{mac}/boot': ({ body }) => {
        const b = body as { menu: Machine['menu']; uefi_binary: Machine['uefi_binary'] };
        return json(200, { ...ready, menu: b.menu, uefi_binary: b.uefi_binary, revision: 2 });
      },
    });
    renderAt('/', page(ready));
    fireEvent.click(screen.getByRole('button', { name: 'Edit boot settings…' }));
    const dialog = await screen.findByRole('dialog', { name: 'Edit boot settings of node-02' });
    fireEvent.click(within(dialog).getByLabelText('Show the boot menu'));
    fireEvent.input(within(dialog).getByLabelText('Menu timeout (seconds)'), { target: { value: '3' } });
    fireEvent.change(within(dialog).getByLabelText('Default item'), { target: { value: 'local' } });
    fireEvent.change(within(dialog).getByLabelText('UEFI iPXE binary'), { target: { value: 'snponly.efi' } });
    fireEvent.click(within(dialog).getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(value('Boot menu')).toBe('on'));
    expect(api.calls).toEqual([
      { method: 'PUT', path: `/api/v1/machines/${mac}/boot`, body: { menu: { enabled: true, timeout_seconds: 3, default: 'local' }, uefi_binary: 'snponly.efi' } },
    ]);
    expect(value('Menu timeout')).toBe('3 s');
    expect(value('Menu default')).toBe('Boot from local disk');
    expect(value('UEFI binary')).toBe('snponly.efi');
    expect(screen.queryByRole('dialog', { name: 'Edit boot settings of node-02' })).toBeNull();
  });

  it('puts the API refusal on the field it names and keeps the dialog open', async () => {
    // The browser holds the timeout to the API's documented range; the
    // API's own word decides, and lands on the field.
    fakeAPI({
      'PUT /api/v1/machines/{mac}/boot': () =>
        json(422, {
          status: 422, title: 'Unprocessable Entity', detail: 'validation failed',
          errors: [{ location: 'body.menu.timeout_seconds', message: 'expected number <= 20', value: 30 }],
        }),
    });
    renderAt('/', page(ready));
    fireEvent.click(screen.getByRole('button', { name: 'Edit boot settings…' }));
    const dialog = await screen.findByRole('dialog', { name: 'Edit boot settings of node-02' });
    const input = within(dialog).getByLabelText('Menu timeout (seconds)') as HTMLInputElement;
    expect([input.min, input.max]).toEqual(['0', '600']);
    fireEvent.input(input, { target: { value: '30' } });
    fireEvent.click(within(dialog).getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(dialog.querySelector('[data-error-for="menu.timeout_seconds"]')?.textContent).toBe('expected number <= 20'));
    expect(value('Boot menu')).toBe('off');
    expect(screen.getByRole('dialog', { name: 'Edit boot settings of node-02' })).toBeTruthy();
  });

  it('offers no change for a rejected machine', () => {
    fakeAPI({});
    renderAt('/', page({ ...ready, state: 'rejected' }));
    expect(screen.queryByRole('button', { name: /Edit boot settings/ })).toBeNull();
    expect(screen.getByText(/rejected machine gets no boot/)).toBeTruthy();
  });
});
