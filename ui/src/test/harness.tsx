// Renders pages as the app does (session, live stream, router) against a
// fake API: a table of handlers keyed by "METHOD /path".
import { render } from '@testing-library/preact';
import type { AnyComponent } from 'preact';
import { LocationProvider, Route, Router } from 'preact-iso';
import { vi } from 'vitest';
import { newClient } from '../api/client';
import { LiveProvider } from '../lib/live';
import { SessionContext, type Role } from '../lib/session';

export type Handler = (req: { method: string; path: string; query: URLSearchParams; body: unknown; auth: string; signal?: AbortSignal | null }) =>
  Response | Promise<Response>;

export const json = (status: number, body: unknown) =>
  new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'Content-Type': status >= 400 ? 'application/problem+json' : 'application/json' } });

/** fakeAPI installs a fetch that answers from routes and records every call. */
export function fakeAPI(routes: Record<string, Handler>) {
  const calls: { method: string; path: string; body: unknown }[] = [];
  const f = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = input instanceof Request ? input : new Request(new URL(String(input), 'http://localhost:3000'), init);
    const url = new URL(req.url);
    const text = req.method === 'GET' || req.method === 'HEAD' ? '' : await req.text();
    const body = text ? JSON.parse(text) : undefined;
    const path = decodeURIComponent(url.pathname);
    calls.push({ method: req.method, path, body });
    for (const [key, h] of Object.entries(routes)) {
      const [m, pattern] = key.split(' ');
      const re = new RegExp(`^${pattern!.replace(/\{[^}]+\}/g, '[^/]+')}$`);
      if (m === req.method && re.test(path)) {
        return h({ method: req.method, path, query: url.searchParams, body, auth: req.headers.get('Authorization') ?? '', signal: init?.signal ?? req.signal });
      }
    }
    return json(404, { title: 'Not Found', status: 404, detail: `no route ${req.method} ${path}` });
  });
  vi.stubGlobal('fetch', f);
  return { fetch: f, calls };
}

/** renderAt renders the app's routes at url for a signed-in role. */
export function renderAt(url: string, routes: { path: string; component: AnyComponent }[], role: Role = 'admin', live = false) {
  history.replaceState(null, '', url);
  const session = { token: 'tok', name: `${role}-token`, role, client: newClient('tok', () => {}, 'http://localhost:3000') };
  const signOut = vi.fn();
  const tree = (
    <LocationProvider>
      <Router>{routes.map((r) => <Route key={r.path} path={r.path} component={r.component} />)}</Router>
    </LocationProvider>
  );
  const out = render(
    <SessionContext.Provider value={{ session, signOut }}>{live ? <LiveProvider>{tree}</LiveProvider> : tree}</SessionContext.Provider>,
  );
  return { ...out, signOut };
}
