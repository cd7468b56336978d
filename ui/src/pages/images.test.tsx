import { cleanup, fireEvent, screen, waitFor } from '@testing-library/preact';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ImagesPage } from './images';
import { ProfilesPage } from './profiles';
import { fakeAPI, json, renderAt, type Handler } from '../test/harness';

const sum = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
const ready = {
  name: 'debian-12', state: 'ready', format: 'zst', size: 412316860, sha256: sum, source: 'https://example.org/d.qcow2',
  url: '/images/library/debian-12.raw.zst', bytes_done: 1, created_at: '', updated_at: '',
};
const importing = { name: 'half', state: 'importing', size: 0, source: 'http://x/h.raw', bytes_done: 1 << 20, bytes_total: 4 << 20, created_at: '', updated_at: '' };
const failed = { name: 'bad', state: 'failed', size: 0, source: 'upload', bytes_done: 10, error: 'checksum mismatch: …', created_at: '', updated_at: '' };

const page = [{ path: '/images', component: ImagesPage }];
const rows = () => [...document.querySelectorAll('tbody tr')].map((r) => r.getAttribute('data-name'));
const row = (name: string) => document.querySelector(`tbody tr[data-name="${name}"]`);
const dialog = () => document.querySelector('dialog[open]');

/** FakeXHR stands in for XMLHttpRequest: it answers 201 after reporting progress. */
class FakeXHR {
  static last: FakeXHR | null = null;
  url = '';
  headers: Record<string, string> = {};
  sent: unknown = null;
  status = 0;
  responseText = '';
  upload: { onprogress: ((e: ProgressEvent) => void) | null } = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;
  constructor() {
    FakeXHR.last = this;
  }
  open(_: string, url: string) {
    this.url = url;
  }
  setRequestHeader(k: string, v: string) {
    this.headers[k] = v;
  }
  send(body: unknown) {
    this.sent = body;
  }
  abort() {
    this.onabort?.();
  }
  progress(loaded: number, total: number) {
    this.upload.onprogress?.({ loaded, total, lengthComputable: true } as ProgressEvent);
  }
  respond(status: number, body: unknown) {
    this.status = status;
    this.responseText = JSON.stringify(body);
    this.onload?.();
  }
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe('images page', () => {
  it('lists the library with format, size, checksum, progress and failures, and polls while importing', async () => {
    let lists = 0;
    const api = fakeAPI({
      'GET /api/v1/images': () => {
        lists++;
        return json(200, lists === 1 ? [failed, ready, importing] : [failed, ready, { ...importing, state: 'ready', format: 'raw', size: 4 << 20, sha256: sum }]);
      },
    });
    renderAt('/images', page);
    await waitFor(() => expect(rows()).toEqual(['bad', 'debian-12', 'half']));
    expect(document.title).toBe('Images · Foundry');
    expect(row('debian-12')?.textContent).toContain('393 MiB');
    expect(row('debian-12')?.textContent).toContain('9f86d081884c…');
    expect(row('debian-12')?.querySelector('a')?.getAttribute('href')).toBe('/images/library/debian-12.raw.zst');
    expect(row('half')?.textContent).toContain('1 MiB of 4 MiB (25%)');
    expect(row('half')?.querySelector('progress')?.getAttribute('value')).toBe('25');
    expect(row('bad')?.textContent).toContain('checksum mismatch');
    // The import ends: the next poll shows it ready, and polling stops.
    await waitFor(() => expect(row('half')?.querySelector('[data-state="ready"]')).not.toBeNull(), { timeout: 4000 });
    await new Promise((r) => setTimeout(r, 1800));
    expect(api.calls.filter((c) => c.method === 'GET')).toHaveLength(2);
  });

  it('shows each appliance’s copy in a fleet, says machines wait while this one has none, and polls until it has', async () => {
    const at = (here: string, b: Record<string, unknown>) => ({
      ...ready,
      here,
      appliances: [
        { appliance: 'rack1-8080', url: 'http://10.0.1.1:8080', state: 'present', updated_at: '' },
        { appliance: 'rack2-8080', url: 'http://10.0.2.1:8080', updated_at: '', ...b },
      ],
    });
    let lists = 0;
    const api = fakeAPI({
      'GET /api/v1/images': () => {
        lists++;
        return json(200, [lists === 1 ? at('syncing', { state: 'syncing', bytes_done: 1 << 20, bytes_total: 4 << 20 }) : at('present', { state: 'present' })]);
      },
    });
    renderAt('/images', page);
    await waitFor(() => expect(rows()).toEqual(['debian-12']));
    const copy = (a: string) => row('debian-12')?.querySelector(`[data-copy="${a}"]`)?.textContent;
    expect(copy('here')).toContain('Not on this appliance yet (syncing): machines booting through it wait');
    expect(copy('rack1-8080')).toBe('rack1-8080 present');
    expect(copy('rack2-8080')).toBe('rack2-8080 syncing, 1 MiB of 4 MiB (25%)');
    await waitFor(() => expect(copy('rack2-8080')).toBe('rack2-8080 present'), { timeout: 4000 });
    expect(copy('here')).toBeUndefined();
    await new Promise((r) => setTimeout(r, 1800));
    expect(api.calls.filter((c) => c.method === 'GET')).toHaveLength(2);
  });

  it('shows a failed copy’s reason, and nothing more for a lone appliance with its copy', async () => {
    fakeAPI({
      'GET /api/v1/images': () =>
        json(200, [
          { ...ready, here: 'present', appliances: [{ appliance: 'solo-8080', url: 'http://10.0.0.1:8080', state: 'present', updated_at: '' }] },
          {
            ...ready,
            name: 'tampered',
            here: 'failed',
            appliances: [{ appliance: 'b-8080', url: 'http://b:8080', state: 'failed', error: 'refused: checksum mismatch', updated_at: '' }],
          },
        ]),
    });
    renderAt('/images', page);
    await waitFor(() => expect(rows()).toEqual(['debian-12', 'tampered']));
    expect(row('debian-12')?.querySelector('.copies')).toBeNull();
    expect(row('tampered')?.textContent).toContain('refused: checksum mismatch');
    expect(row('tampered')?.querySelector('[data-copy="here"]')?.textContent).toContain('(failed)');
  });

  it('imports by URL and puts the API’s refusal on the field it names', async () => {
    const api = fakeAPI({
      'GET /api/v1/images': () => json(200, []),
      'POST /api/v1/images': (r) =>
        (r.body as { url: string }).url.startsWith('file:')
          ? json(422, { status: 422, detail: 'validation failed', errors: [{ location: 'body.url', message: 'want an http or https URL' }] })
          : json(202, { ...importing, name: 'deb' }),
    });
    renderAt('/images', page);
    fireEvent.click(await screen.findByRole('button', { name: 'Import from URL…' }));
    fireEvent.input(screen.getByLabelText('Name'), { target: { value: 'deb' } });
    fireEvent.input(screen.getByLabelText('URL'), { target: { value: 'file:///etc/passwd' } });
    fireEvent.click(screen.getByRole('button', { name: 'Import' }));
    await waitFor(() => expect(document.querySelector('[data-error-for="url"]')?.textContent).toBe('want an http or https URL'));
    fireEvent.input(screen.getByLabelText('URL'), { target: { value: ' http://10.0.0.5/d.raw.zst ' } });
    fireEvent.input(screen.getByLabelText('SHA-256 (optional)'), { target: { value: sum } });
    fireEvent.click(screen.getByRole('button', { name: 'Import' }));
    await waitFor(() => expect(dialog()).toBeNull());
    expect(api.calls.filter((c) => c.method === 'POST').map((c) => c.body)).toEqual([
      { name: 'deb', url: 'file:///etc/passwd' },
      { name: 'deb', url: 'http://10.0.0.5/d.raw.zst', sha256: sum },
    ]);
  });

  it('uploads a file with progress, naming the image after it', async () => {
    vi.stubGlobal('XMLHttpRequest', FakeXHR);
    const api = fakeAPI({ 'GET /api/v1/images': () => json(200, []) });
    renderAt('/images', page);
    fireEvent.click(await screen.findByRole('button', { name: 'Upload a file…' }));
    const file = new File(['0123456789'], 'debian-12-generic-amd64.qcow2');
    fireEvent.change(screen.getByLabelText('File'), { target: { files: [file] } });
    expect((screen.getByLabelText('Name') as HTMLInputElement).value).toBe('debian-12-generic-amd64');
    fireEvent.click(screen.getByRole('button', { name: 'Upload' }));
    await waitFor(() => expect(FakeXHR.last?.sent).toBe(file));
    const x = FakeXHR.last!;
    expect(x.url).toBe('/api/v1/images/debian-12-generic-amd64');
    expect(x.headers.Authorization).toBe('Bearer tok');
    x.progress(5, 10);
    await waitFor(() => expect(dialog()?.querySelector('.upload-progress')?.textContent).toContain('5 B of 10 B (50%)'));
    x.respond(201, { ...ready, name: 'debian-12-generic-amd64' });
    await waitFor(() => expect(dialog()).toBeNull());
    await waitFor(() => expect(api.calls.filter((c) => c.method === 'GET')).toHaveLength(2));
  });

  it('shows a checksum mismatch on the checksum field', async () => {
    vi.stubGlobal('XMLHttpRequest', FakeXHR);
    fakeAPI({ 'GET /api/v1/images': () => json(200, []) });
    renderAt('/images', page);
    fireEvent.click(await screen.findByRole('button', { name: 'Upload a file…' }));
    fireEvent.click(screen.getByRole('button', { name: 'Upload' }));
    await waitFor(() => expect(document.querySelector('[data-error-for="file"]')?.textContent).toBe('choose a file'));
    fireEvent.change(screen.getByLabelText('File'), { target: { files: [new File(['x'], 'd.raw')] } });
    fireEvent.input(screen.getByLabelText('SHA-256 (optional)'), { target: { value: '00' } });
    fireEvent.click(screen.getByRole('button', { name: 'Upload' }));
    await waitFor(() => expect(FakeXHR.last?.url).toBe('/api/v1/images/d?sha256=00'));
    FakeXHR.last!.respond(422, { status: 422, detail: 'checksum mismatch', errors: [{ location: 'query.sha256', message: 'checksum mismatch: the image is …' }] });
    await waitFor(() => expect(document.querySelector('[data-error-for="sha256"]')?.textContent).toBe('checksum mismatch: the image is …'));
  });

  it('shows the in-use refusal of a delete and keeps the image', async () => {
    const detail = 'delete image debian-12: in use: image debian-12 is used by profile prod';
    fakeAPI({
      'GET /api/v1/images': () => json(200, [ready]),
      'DELETE /api/v1/images/{name}': () => json(409, { title: 'Conflict', status: 409, detail }),
    });
    renderAt('/images', page);
    fireEvent.click(await screen.findByRole('button', { name: 'Delete debian-12' }));
    fireEvent.click(screen.getByRole('button', { name: 'Delete' }));
    await waitFor(() => expect(dialog()?.querySelector('.notice-error')?.textContent).toBe(`Cannot delete: ${detail}`));
    fireEvent.click(screen.getByRole('button', { name: 'Cancel' }));
    await waitFor(() => expect(dialog()).toBeNull());
    expect(rows()).toEqual(['debian-12']);
  });

  it('gives a viewer the list without any control', async () => {
    fakeAPI({ 'GET /api/v1/images': () => json(200, [ready, importing]) });
    renderAt('/images', page, 'viewer');
    await waitFor(() => expect(rows()).toHaveLength(2));
    expect(document.querySelectorAll('section button')).toHaveLength(0);
  });
});

describe('profile form and the library', () => {
  const routes = (extra: Record<string, Handler> = {}): Record<string, Handler> => ({
    'GET /api/v1/profiles': () => json(200, [{ name: 'lib', kind: 'image', image: 'debian-12', created_at: '', updated_at: '' }]),
    'GET /api/v1/images': () => json(200, [importing, ready, { ...ready, name: 'alpine', format: 'raw' }]),
    ...extra,
  });

  it('creates an image profile that names a ready library image', async () => {
    const api = fakeAPI(routes({ 'POST /api/v1/profiles': () => json(201, {}) }));
    renderAt('/profiles', [{ path: '/profiles', component: ProfilesPage }]);
    await waitFor(() => expect(rows()).toEqual(['lib']));
    expect(row('lib')?.textContent).toContain('library image debian-12');
    fireEvent.click(screen.getByRole('button', { name: 'New profile…' }));
    fireEvent.input(screen.getByLabelText('Name'), { target: { value: 'deb' } });
    fireEvent.change(screen.getByLabelText('Kind'), { target: { value: 'image' } });
    await waitFor(() => expect([...(screen.getByLabelText('Library image') as HTMLSelectElement).options].map((o) => o.value)).toEqual(['', 'alpine', 'debian-12']));
    fireEvent.change(screen.getByLabelText('Library image'), { target: { value: 'debian-12' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create' }));
    await waitFor(() => expect(dialog()).toBeNull());
    expect(api.calls.find((c) => c.method === 'POST')?.body).toEqual({ name: 'deb', kind: 'image', description: '', image: 'debian-12' });
  });

  it('switches a profile from its library image to a URL', async () => {
    const api = fakeAPI(routes({ 'PUT /api/v1/profiles/{name}': () => json(200, {}) }));
    renderAt('/profiles', [{ path: '/profiles', component: ProfilesPage }]);
    fireEvent.click(await screen.findByRole('button', { name: 'Edit lib' }));
    await waitFor(() => expect((screen.getByLabelText('Library image') as HTMLSelectElement).value).toBe('debian-12'));
    fireEvent.change(screen.getByLabelText('Image source'), { target: { value: 'url' } });
    fireEvent.input(screen.getByLabelText('Image URL'), { target: { value: '/images/x.raw' } });
    fireEvent.input(screen.getByLabelText('Image SHA-256'), { target: { value: sum } });
    fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(dialog()).toBeNull());
    expect(api.calls.find((c) => c.method === 'PUT')?.body).toEqual({ kind: 'image', description: '', image_url: '/images/x.raw', image_sha256: sum });
  });
});
