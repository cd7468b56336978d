import { describe, expect, it, vi } from 'vitest';
import { ApiError } from '../api/problem';
import { anyImporting, nameFromFile, readyImages, shortSum, transfer, uploadImage, validName, type Image } from './images';
import names from './names.json';

/** FakeXHR records the request and answers when the test says so. */
class FakeXHR {
  method = '';
  url = '';
  headers: Record<string, string> = {};
  sent: unknown = null;
  status = 0;
  responseText = '';
  aborted = false;
  upload: { onprogress: ((e: ProgressEvent) => void) | null } = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;
  open(method: string, url: string) {
    this.method = method;
    this.url = url;
  }
  setRequestHeader(k: string, v: string) {
    this.headers[k] = v;
  }
  send(body: unknown) {
    this.sent = body;
  }
  abort() {
    this.aborted = true;
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

const img = (name: string, state: string, extra: Partial<Image> = {}): Image =>
  ({ name, state, size: 0, source: 'upload', bytes_done: 0, created_at: '', updated_at: '', ...extra }) as Image;

describe('image helpers', () => {
  it('describes a transfer with and without a known total', () => {
    expect(transfer(512, 0)).toEqual({ percent: null, text: '512 B received' });
    expect(transfer(1 << 20, 4 << 20)).toEqual({ percent: 25, text: '1 MiB of 4 MiB (25%)' });
    expect(transfer(5, 4).percent).toBe(100);
    expect(transfer(-3, 10).percent).toBe(0);
  });

  it('proposes a name the API accepts from a file name', () => {
    expect(nameFromFile('debian-12-generic-amd64.qcow2')).toBe('debian-12-generic-amd64');
    expect(nameFromFile('C:\\images\\disk.raw.zst')).toBe('disk');
    expect(nameFromFile('my image (1).img.xz')).toBe('my-image--1-');
    expect(nameFromFile('../../etc.gz')).toBe('etc');
    expect(nameFromFile('-.raw')).toBe('');
  });

  it('polls while an image imports and offers only ready images', () => {
    const l = [img('b', 'ready'), img('a', 'ready'), img('c', 'importing'), img('d', 'failed')];
    expect(anyImporting(l)).toBe(true);
    expect(anyImporting(l.filter((i) => i.state !== 'importing'))).toBe(false);
    expect(readyImages(l).map((i) => i.name)).toEqual(['a', 'b']);
    expect(shortSum('9f86d081884c7d659a2feaa0c55ad015')).toBe('9f86d081884c…');
  });
});

describe('uploadImage', () => {
  it('streams the file with the token and checksum and reports progress', async () => {
    const x = new FakeXHR();
    const seen: number[] = [];
    const file = new Blob(['disk']);
    const p = uploadImage('deb 12', file, { token: 'tok', sha256: 'ab', newXHR: () => x as unknown as XMLHttpRequest, onProgress: (n) => seen.push(n) });
    expect(x.method).toBe('PUT');
    expect(x.url).toBe('/api/v1/images/deb%2012?sha256=ab');
    expect(x.headers).toMatchObject({ Authorization: 'Bearer tok', 'Content-Type': 'application/octet-stream' });
    expect(x.sent).toBe(file);
    x.progress(2, 4);
    x.progress(4, 4);
    x.respond(201, { name: 'deb 12', state: 'ready' });
    await expect(p).resolves.toMatchObject({ state: 'ready' });
    expect(seen).toEqual([2, 4]);
  });

  it('rejects with the API problem, and signs out on 401', async () => {
    const x = new FakeXHR();
    const p = uploadImage('d', new Blob(['x']), { token: 't', newXHR: () => x as unknown as XMLHttpRequest });
    x.respond(422, { status: 422, detail: 'checksum mismatch', errors: [{ location: 'query.sha256', message: 'checksum mismatch' }] });
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).problem.errors?.[0]?.location).toBe('query.sha256');

    const y = new FakeXHR();
    const out = vi.fn();
    const q = uploadImage('d', new Blob(['x']), { token: 't', newXHR: () => y as unknown as XMLHttpRequest, onUnauthorized: out });
    y.respond(401, { status: 401, detail: 'unknown token' });
    await expect(q).rejects.toThrow('unknown token');
    expect(out).toHaveBeenCalled();
  });

  it('is cancelled by its signal', async () => {
    const x = new FakeXHR();
    const ac = new AbortController();
    const p = uploadImage('d', new Blob(['x']), { token: 't', signal: ac.signal, newXHR: () => x as unknown as XMLHttpRequest });
    ac.abort();
    await expect(p).rejects.toThrow('Upload cancelled.');
    expect(x.aborted).toBe(true);
  });
});

describe('validName', () => {
  // names.json: the Go rule's verdicts (go test ./names -run TestDashboardNames -update).
  it.each(names)('$name', ({ name, ok }) => {
    expect(validName(name)).toBe(ok);
  });
});
