// Sign-in: the API token lives in sessionStorage (gone when the tab
// closes) and decides the role. Viewers see everything; the write controls
// are hidden or disabled for them, and the API refuses them anyway.
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { newClient, type Client } from '../api/client';
import { ApiError, asProblem } from '../api/problem';

export type Role = 'admin' | 'viewer';

export interface Session {
  token: string;
  /** name is the token's name (env for FOUNDRY_ADMIN_TOKEN). */
  name: string;
  role: Role;
  client: Client;
}

const storageKey = 'foundry.token';

export function savedToken(): string {
  try {
    return sessionStorage.getItem(storageKey) ?? '';
  } catch {
    return '';
  }
}

export function saveToken(t: string): void {
  try {
    if (t) sessionStorage.setItem(storageKey, t);
    else sessionStorage.removeItem(storageKey);
  } catch {
    // Storage may be disabled; the session then lasts until reload.
  }
}

export interface Identity {
  name: string;
  role: Role;
}

/**
 * whoAmI checks a token and finds its name and role (GET /api/v1/whoami,
 * which every token may call: a 401 means the token is wrong).
 */
export async function whoAmI(token: string, f: typeof fetch = fetch.bind(globalThis)): Promise<Identity> {
  const r = await f('/api/v1/whoami', { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store' });
  const body: unknown = await r.json().catch(() => undefined);
  if (!r.ok) throw new ApiError(r.status, asProblem(r.status, body));
  const me = body as Partial<Identity> | undefined;
  if (!me || (me.role !== 'admin' && me.role !== 'viewer')) {
    throw new ApiError(502, { status: 502, title: 'Bad Gateway', detail: 'The appliance answered /api/v1/whoami without a role.' });
  }
  return { name: typeof me.name === 'string' ? me.name : '', role: me.role };
}

export function newSession(token: string, me: Identity, onUnauthorized: () => void): Session {
  return { token, name: me.name, role: me.role, client: newClient(token, onUnauthorized) };
}

export interface SessionCtx {
  session: Session;
  signOut: (why?: string) => void;
}

export const SessionContext = createContext<SessionCtx | null>(null);

export function useSession(): SessionCtx {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a signed-in page');
  return s;
}

/** useAdmin is true when the signed-in token may change things. */
export function useAdmin(): boolean {
  return useSession().session.role === 'admin';
}
