// The typed API client: openapi-fetch over the generated paths, with the
// session's bearer token on every call and every error turned into an
// ApiError carrying the RFC 9457 problem.
import createClient, { type Middleware } from 'openapi-fetch';
import type { paths } from './schema';
import { ApiError, asProblem } from './problem';

export type Client = ReturnType<typeof createClient<paths>>;

/**
 * newClient returns a client that sends token and calls onUnauthorized when
 * the API answers 401 (a revoked or mistyped token).
 */
export function newClient(token: string, onUnauthorized: () => void, baseUrl = ''): Client {
  const c = createClient<paths>({ baseUrl });
  const auth: Middleware = {
    onRequest({ request }) {
      request.headers.set('Authorization', `Bearer ${token}`);
      return request;
    },
    onResponse({ response }) {
      if (response.status === 401) onUnauthorized();
      return response;
    },
  };
  c.use(auth);
  return c;
}

/**
 * must unwraps an openapi-fetch result: the data on success, an ApiError
 * otherwise. Calls that answer 204 give undefined.
 */
export async function must<T>(
  p: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const { data, error, response } = await p;
  if (!response.ok) throw new ApiError(response.status, asProblem(response.status, error));
  return data as T;
}

