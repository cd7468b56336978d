import { cleanup, fireEvent, screen, waitFor } from '@testing-library/preact';
import { afterEach, describe, expect, it } from 'vitest';
import { ClustersPage } from './clusters';
import { ProfilesPage } from './profiles';
import { fakeAPI, json, renderAt, type Handler } from '../test/harness';

const clusters = [
  { name: 'dev', created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-02T00:00:00Z' },
  { name: 'rack1', description: 'Rack 1', default_profile: 'debian', created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-03T00:00:00Z' },
];
const profiles = [
  { name: 'debian', kind: 'netboot', kernel: '/k', created_at: '', updated_at: '' },
  { name: 'img', kind: 'image', image_url: 'http://x/i.raw', image_sha256: 'ab', created_at: '', updated_at: '' },
];

function routes(extra: Record<string, Handler> = {}): Record<string, Handler> {
  return {
    'GET /api/v1/clusters': () => json(200, clusters),
    'GET /api/v1/profiles': () => json(200, profiles),
    ...extra,
  };
}

const pages = {
  clusters: [{ path: '/clusters', component: ClustersPage }],
  profiles: [{ path: '/profiles', component: ProfilesPage }],
};
const rows = () => [...document.querySelectorAll('tbody tr')].map((r) => r.getAttribute('data-name'));
const dialog = () => document.querySelector('dialog[open]');

afterEach(cleanup);

describe('clusters and profiles pages', () => {
  it('puts the API’s refusal of a new cluster on the field it names', async () => {
    const api = fakeAPI(
      routes({
        'POST /api/v1/clusters': () =>
          json(422, { title: 'Unprocessable Entity', status: 422, detail: 'validation failed', errors: [{ location: 'body.name', message: 'bad name' }, { location: 'body.x', message: 'odd' }] }),
      }),
    );
    renderAt('/clusters', pages.clusters);
    await waitFor(() => expect(rows()).toEqual(['dev', 'rack1']));
    expect(document.title).toBe('Clusters · Foundry');
    fireEvent.click(screen.getByRole('button', { name: 'New cluster…' }));
    fireEvent.input(screen.getByLabelText('Name'), { target: { value: ' a b ' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create' }));
    await waitFor(() => expect(document.querySelector('[data-error-for="name"]')?.textContent).toBe('bad name'));
    expect(dialog()?.querySelector('.notice-error')?.textContent).toBe('body.x: odd');
    expect(api.calls.find((c) => c.method === 'POST')?.body).toEqual({ name: 'a b', description: '', default_profile: '', bmc_user: false });
  });

  it('saves an edited profile, closes the editor and reloads the list', async () => {
    const api = fakeAPI(routes({ 'PUT /api/v1/profiles/{name}': () => json(200, profiles[0]) }));
    renderAt('/profiles', pages.profiles);
    fireEvent.click(await screen.findByRole('button', { name: 'Edit debian' }));
    expect(dialog()?.getAttribute('aria-label')).toBe('Edit profile debian');
    fireEvent.input(screen.getByLabelText('Kernel command line'), { target: { value: 'quiet' } });
    fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(dialog()).toBeNull());
    const put = api.calls.find((c) => c.method === 'PUT');
    expect(put?.path).toBe('/api/v1/profiles/debian');
    expect(put?.body).toEqual({ kind: 'netboot', description: '', kernel: '/k', initrd: '', cmdline: 'quiet', script: '' });
    await waitFor(() => expect(api.calls.filter((c) => c.method === 'GET')).toHaveLength(2));
  });

  it('shows a refused delete as the API says it and keeps the record', async () => {
    const detail = 'profile debian is the default of cluster rack1';
    fakeAPI(routes({ 'DELETE /api/v1/profiles/{name}': () => json(409, { title: 'Conflict', status: 409, detail }) }));
    renderAt('/profiles', pages.profiles);
    fireEvent.click(await screen.findByRole('button', { name: 'Delete debian' }));
    expect(dialog()?.textContent).toContain('The API refuses while a machine or cluster uses it.');
    fireEvent.click(screen.getByRole('button', { name: 'Delete' }));
    await waitFor(() => expect(dialog()?.querySelector('.notice-error')?.textContent).toBe(`Cannot delete: ${detail}`));
    fireEvent.click(screen.getByRole('button', { name: 'Cancel' }));
    await waitFor(() => expect(dialog()).toBeNull());
    expect(rows()).toEqual(['debian', 'img']);
  });

  it.each(Object.entries(pages))('%s: a viewer gets the list without any control', async (_, page) => {
    fakeAPI(routes());
    renderAt(page[0]!.path, page, 'viewer');
    await waitFor(() => expect(rows()).toHaveLength(2));
    expect(document.querySelectorAll('section button')).toHaveLength(0);
  });

  it('shows a failed load instead of the empty-list hint', async () => {
    fakeAPI(routes({ 'GET /api/v1/profiles': () => json(500, { title: 'Internal Server Error', status: 500, detail: 'boom' }) }));
    renderAt('/clusters', pages.clusters);
    await waitFor(() => expect(document.querySelector('.notice-error')?.textContent).toBe('boom'));
    expect(document.querySelector('p.empty')).toBeNull();
  });
});
