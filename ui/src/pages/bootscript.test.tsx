import { cleanup, screen, waitFor } from '@testing-library/preact';
import { afterEach, describe, expect, it } from 'vitest';
import { BootScriptCard } from './bootscript';
import { fakeAPI, json, renderAt } from '../test/harness';

afterEach(cleanup);

const mac = '52:54:00:aa:00:01';
const page = [{ path: '/', component: () => <BootScriptCard mac={mac} rev={0} /> }];
const discovery = `#!ipxe\n# Foundry discovery script for ${mac}\nkernel http://10.77.0.1:8080/images/discovery/vmlinuz initrd=initrd foundry.nonce=NONCE-ISSUED-AT-BOOT\nboot\n`;

describe('boot script card', () => {
  it('shows the previewed script and its kind', async () => {
    const api = fakeAPI({ 'GET /api/v1/machines/{mac}/boot-script': () => json(200, { mac, kind: 'discovery', text: discovery }) });
    renderAt('/', page, 'viewer');
    const pre = await screen.findByLabelText(`Boot script of ${mac}`);
    expect(pre.textContent).toBe(discovery);
    expect(document.querySelector('.boot-script')?.getAttribute('data-kind')).toBe('discovery');
    expect(screen.getByText(/Discovery: the discovery OS/)).toBeTruthy();
    // Only the preview: never /boot/{mac}, which would issue a nonce.
    expect(api.calls.map((c) => c.path)).toEqual([`/api/v1/machines/${mac}/boot-script`]);
  });

  it('shows why no script can be rendered, and what the machine gets', async () => {
    fakeAPI({
      'GET /api/v1/machines/{mac}/boot-script': () =>
        json(200, { mac, kind: 'error', text: '#!ipxe\n# Foundry error\nexit 1\n', error: 'unsafe value for an iPXE script: cmdline' }),
    });
    renderAt('/', page);
    await waitFor(() => expect(screen.getByRole('alert').textContent).toContain('unsafe value for an iPXE script'));
    expect(screen.getByLabelText(`Boot script of ${mac}`).textContent).toContain('# Foundry error');
  });

  it('says so when the appliance offers no preview', async () => {
    fakeAPI({ 'GET /api/v1/machines/{mac}/boot-script': () => json(404, { status: 404, detail: 'no boot scripts' }) });
    renderAt('/', page);
    await screen.findByText(/offers no preview of boot scripts/);
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('reports other failures', async () => {
    fakeAPI({ 'GET /api/v1/machines/{mac}/boot-script': () => json(500, { status: 500, detail: 'internal error; see the appliance log' }) });
    renderAt('/', page);
    await waitFor(() => expect(screen.getByRole('alert').textContent).toContain('internal error'));
  });
});
