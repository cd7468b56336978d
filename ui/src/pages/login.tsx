import { useState } from 'preact/hooks';
import { Field, Notice } from '../components/common';
import { message } from '../api/problem';

export function Login({ onSignIn, note }: { onSignIn: (token: string) => Promise<void>; note?: string }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    const t = token.trim();
    if (!t) {
      setError('Paste an API token.');
      return;
    }
    setBusy(true);
    setError('');
    try {
      await onSignIn(t);
    } catch (err) {
      setError(message(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main class="login" id="main">
      <form class="card" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">Foundry</h1>
        <p class="muted">Sign in with an API token (admin or viewer).</p>
        {note && <Notice kind="info">{note}</Notice>}
        <Field
          label="API token"
          name="token"
          error={error}
          hint={
            <>
              The appliance printed one at first start and keeps it in <code>&lt;data_dir&gt;/admin-token</code>; more with{' '}
              <code>foundry tokens create</code>. It stays in this tab only.
            </>
          }
        >
          {(p) => (
            <input
              {...p}
              type="password"
              name="token"
              autoComplete="off"
              spellcheck={false}
              value={token}
              onInput={(e) => setToken(e.currentTarget.value)}
              autoFocus
            />
          )}
        </Field>
        <button type="submit" disabled={busy}>{busy ? 'Signing in…' : 'Sign in'}</button>
      </form>
    </main>
  );
}
