import { describe, expect, it, vi } from 'vitest';
import { ApiError } from '../api/problem';
import { saveToken, savedToken, whoAmI } from './session';

function fakeFetch(status: number, body: unknown) {
  return vi.fn(async (url: string, init?: RequestInit) => {
    expect(url).toBe('/api/v1/whoami');
    expect(new Headers(init?.headers).get('Authorization')).toBe('Bearer t0k');
    return new Response(JSON.stringify(body), { status });
  }) as unknown as typeof fetch;
}

describe('whoAmI', () => {
  it.each([
    ['admin', { name: 'bootstrap', role: 'admin' }],
    ['viewer', { name: 'ci', role: 'viewer' }],
  ] as const)('%s: one call, no probing', async (_, me) => {
    const f = fakeFetch(200, me);
    await expect(whoAmI('t0k', f)).resolves.toEqual(me);
    expect(f).toHaveBeenCalledTimes(1);
  });

  it('refuses a wrong token with the API’s message', async () => {
    const err = await whoAmI('t0k', fakeFetch(401, { status: 401, detail: 'unknown or revoked API token' })).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(401);
    expect(err.message).toBe('unknown or revoked API token');
  });

  it('does not guess a role the answer lacks', async () => {
    await expect(whoAmI('t0k', fakeFetch(200, { name: 'x', role: 'root' }))).rejects.toBeInstanceOf(ApiError);
    await expect(whoAmI('t0k', fakeFetch(200, null))).rejects.toBeInstanceOf(ApiError);
  });
});

describe('token storage', () => {
  it('keeps the token in sessionStorage only', () => {
    saveToken('secret');
    expect(sessionStorage.getItem('foundry.token')).toBe('secret');
    expect(localStorage.length).toBe(0);
    expect(savedToken()).toBe('secret');
    saveToken('');
    expect(savedToken()).toBe('');
  });
});
