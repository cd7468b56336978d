// The image library's client side: what an image's progress reads as, and
// the upload, which goes through XMLHttpRequest because fetch cannot report
// how much of a request body has been sent. The file is handed to the
// browser as a Blob, which it streams from disk.
import type { components } from '../api/schema';
import { ApiError, asProblem } from '../api/problem';
import { bytes } from './format';

export type Image = components['schemas']['Image'];

/** Transfer is how far an import or upload has come. */
export interface Transfer {
  /** percent is 0–100, or null when the total is unknown. */
  percent: number | null;
  text: string;
}

/** transfer describes done bytes out of total (0 or less: unknown). */
export function transfer(done: number, total: number): Transfer {
  const d = Math.max(0, done || 0);
  if (!total || total <= 0) return { percent: null, text: `${bytes(d)} received` };
  const percent = Math.max(0, Math.min(100, Math.floor((d * 100) / total)));
  return { percent, text: `${bytes(d)} of ${bytes(total)} (${percent}%)` };
}

/** importProgress is an importing image's progress. */
export function importProgress(img: Image): Transfer {
  return transfer(img.bytes_done, img.bytes_total ?? 0);
}

/** ImageCopy is one appliance's copy of a ready image (a fleet sharing one store). */
export type ImageCopy = components['schemas']['ImageCopy'];

/** anyImporting is true while the list must be polled: an import runs, or a copy is on its way to an appliance. */
export function anyImporting(imgs: Image[]): boolean {
  const moving = (s: string | undefined) => s === 'syncing' || s === 'verifying' || s === 'missing';
  return imgs.some((i) => i.state === 'importing' || moving(i.here) || (i.appliances ?? []).some((c) => moving(c.state)));
}

/** copyText says where one appliance's copy is. */
export function copyText(c: ImageCopy): string {
  if (c.state === 'syncing') return `syncing, ${transfer(c.bytes_done ?? 0, c.bytes_total ?? 0).text}`;
  return c.state;
}

/** readyImages are those a profile may name, by name. */
export function readyImages(imgs: Image[]): Image[] {
  return imgs.filter((i) => i.state === 'ready').sort((a, b) => a.name.localeCompare(b.name));
}

/** shortSum abbreviates a SHA-256 for a table cell. */
export function shortSum(sum: string | undefined): string {
  if (!sum) return '';
  return sum.length > 12 ? `${sum.slice(0, 12)}…` : sum;
}

const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * validName says whether the API accepts n as a resource name (names.CheckName;
 * images.test.ts holds it to the Go rule's verdicts in names.json).
 */
export function validName(n: string): boolean {
  return namePattern.test(n);
}

/**
 * nameFromFile proposes an image name from a file name: the extensions of
 * image formats dropped, other characters replaced, as the API accepts.
 */
export function nameFromFile(file: string): string {
  let n = file.replace(/^.*[\\/]/, '');
  for (;;) {
    const m = n.match(/\.(raw|img|gz|zst|xz|qcow2)$/i);
    if (!m || m.index === 0) break;
    n = n.slice(0, m.index);
  }
  n = n.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64);
  return validName(n) ? n : '';
}

export interface UploadOptions {
  token: string;
  /** onProgress is told the bytes sent and the total. */
  onProgress?: (sent: number, total: number) => void;
  /** onUnauthorized is called on a 401 (a revoked token). */
  onUnauthorized?: () => void;
  sha256?: string;
  signal?: AbortSignal;
  /** newXHR makes the request object; tests give a fake. */
  newXHR?: () => XMLHttpRequest;
  baseUrl?: string;
}

/** uploadImage sends file as image name and resolves to the ready image. */
export function uploadImage(name: string, file: Blob, o: UploadOptions): Promise<Image> {
  return new Promise((resolve, reject) => {
    const x = o.newXHR ? o.newXHR() : new XMLHttpRequest();
    const q = o.sha256 ? `?sha256=${encodeURIComponent(o.sha256)}` : '';
    x.open('PUT', `${o.baseUrl ?? ''}/api/v1/images/${encodeURIComponent(name)}${q}`);
    x.setRequestHeader('Authorization', `Bearer ${o.token}`);
    x.setRequestHeader('Content-Type', 'application/octet-stream');
    x.setRequestHeader('Accept', 'application/json');
    x.upload.onprogress = (e: ProgressEvent) => o.onProgress?.(e.loaded, e.lengthComputable ? e.total : file.size);
    x.onload = () => {
      let body: unknown;
      try {
        body = JSON.parse(x.responseText);
      } catch {
        body = x.responseText;
      }
      if (x.status >= 200 && x.status < 300) {
        resolve(body as Image);
        return;
      }
      if (x.status === 401) o.onUnauthorized?.();
      reject(new ApiError(x.status, asProblem(x.status, body)));
    };
    x.onerror = () => reject(new Error('The upload was interrupted (network error).'));
    x.onabort = () => reject(new Error('Upload cancelled.'));
    o.signal?.addEventListener('abort', () => x.abort());
    x.send(file);
  });
}
