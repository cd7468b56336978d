// RFC 9457 problem documents as the API returns them (huma's ErrorModel),
// and the mapping of their errors[].location onto form fields.

export interface ProblemDetail {
  location?: string;
  message?: string;
  value?: unknown;
}

export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  errors?: ProblemDetail[] | null;
}

/** ApiError is thrown for every non-2xx answer. */
export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem;
  constructor(status: number, problem: Problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.problem = problem;
  }
}

/** asProblem reads an error body that may or may not be a problem document. */
export function asProblem(status: number, body: unknown): Problem {
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    const p: Problem = { status };
    if (typeof b.title === 'string') p.title = b.title;
    if (typeof b.detail === 'string') p.detail = b.detail;
    if (typeof b.type === 'string') p.type = b.type;
    if (Array.isArray(b.errors)) {
      p.errors = b.errors
        .filter((e): e is Record<string, unknown> => !!e && typeof e === 'object')
        .map((e) => ({
          location: typeof e.location === 'string' ? e.location : undefined,
          message: typeof e.message === 'string' ? e.message : undefined,
          value: e.value,
        }));
    }
    return p;
  }
  return { status, title: typeof body === 'string' && body ? body : `HTTP ${status}` };
}

/**
 * fieldOf turns a problem location into a form field key: the request part
 * ("body.", "query.", "path.") is dropped and array indexes are folded into
 * their list, so "body.network.address" → "network.address" and
 * "body.ssh_keys[1]" → "ssh_keys".
 */
export function fieldOf(location: string | undefined): string {
  if (!location) return '';
  let s = location.replace(/^(body|query|path|header)\.?/, '');
  s = s.replace(/\[\d+\]/g, '');
  return s;
}

/**
 * fieldErrors maps a problem onto the given form fields. Details whose
 * field is not in the form (or that name none) end up in `general`, with
 * the problem's own detail, so nothing the server said is lost.
 */
export function fieldErrors(
  p: Problem,
  fields: readonly string[],
): { byField: Record<string, string>; general: string[] } {
  const byField: Record<string, string> = {};
  const general: string[] = [];
  for (const d of p.errors ?? []) {
    const f = matchField(fieldOf(d.location), fields);
    const msg = d.message || p.detail || 'invalid value';
    if (f) {
      byField[f] = byField[f] ? `${byField[f]}; ${msg}` : msg;
    } else {
      general.push(d.location ? `${d.location}: ${msg}` : msg);
    }
  }
  const detail = p.detail || p.title;
  if (detail && Object.keys(byField).length === 0) general.unshift(detail);
  return { byField, general };
}

// matchField finds the most specific form field that is the location or
// one of its parents ("network.dns" matches "network.dns", then "network").
function matchField(f: string, fields: readonly string[]): string | undefined {
  let cur = f;
  while (cur) {
    if (fields.includes(cur)) return cur;
    const i = cur.lastIndexOf('.');
    cur = i < 0 ? '' : cur.slice(0, i);
  }
  return undefined;
}

/** message is a one-line description of any error for a banner. */
export function message(err: unknown): string {
  if (err instanceof ApiError) {
    const extra = (err.problem.errors ?? [])
      .map((d) => (d.location ? `${d.location}: ${d.message ?? ''}` : d.message ?? ''))
      .filter(Boolean);
    return [err.message, ...extra].join(' — ');
  }
  if (err instanceof Error) return err.message;
  return String(err);
}
