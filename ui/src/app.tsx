// The application shell: sign-in gate, navigation, live connection and
// the client-side routes (ui.go serves index.html for every route path).
import { LocationProvider, Router, Route, useLocation } from 'preact-iso';
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { Login } from './pages/login';
import { MachinesPage } from './pages/machines';
import { MachinePage } from './pages/machine';
import { ApprovePage } from './pages/approve';
import { AuditPage } from './pages/audit';
import { ClustersPage } from './pages/clusters';
import { ProfilesPage } from './pages/profiles';
import { ImagesPage } from './pages/images';
import { LiveProvider, useLive } from './lib/live';
import { GitOpsBadge, GitOpsBanner, useGitOps } from './components/gitops';
import { StoreBadge, StoreBanner, useAbout } from './components/store';
import { newSession, whoAmI, saveToken, savedToken, SessionContext, useSession, type Session } from './lib/session';
import { message } from './api/problem';

export function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [checking, setChecking] = useState(() => savedToken() !== '');
  const [note, setNote] = useState('');

  const signOut = useCallback((why?: string) => {
    saveToken('');
    setSession(null);
    setNote(why ?? '');
  }, []);

  const signIn = useCallback(
    async (token: string) => {
      const me = await whoAmI(token);
      saveToken(token);
      setNote('');
      setSession(newSession(token, me, () => signOut('The API refused your token; sign in again.')));
    },
    [signOut],
  );

  // A reload keeps the tab's session: check the saved token again.
  useEffect(() => {
    const t = savedToken();
    if (!t) return;
    signIn(t)
      .catch((err) => signOut(`Could not restore the session: ${message(err)}`))
      .finally(() => setChecking(false));
  }, []);

  const ctx = useMemo(() => (session ? { session, signOut } : null), [session, signOut]);

  if (checking) return <p class="loading" role="status">Checking the saved token…</p>;
  if (!ctx) return <Login onSignIn={signIn} note={note} />;
  return (
    <SessionContext.Provider value={ctx}>
      <LiveProvider>
        <LocationProvider>
          <Shell />
        </LocationProvider>
      </LiveProvider>
    </SessionContext.Provider>
  );
}

const nav = [
  ['/', 'Machines'],
  ['/audit', 'Audit log'],
  ['/clusters', 'Clusters'],
  ['/profiles', 'Profiles'],
  ['/images', 'Images'],
] as const;

function Shell() {
  const { session, signOut } = useSession();
  const { status } = useLive();
  const { path } = useLocation();
  const gitops = useGitOps();
  const about = useAbout();
  const active = (href: string) => (href === '/' ? path === '/' || path.startsWith('/machines') : path.startsWith(href));
  return (
    <div class="shell">
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <a class="brand" href="/">Foundry</a>
        <nav aria-label="Main">
          <ul>
            {nav.map(([href, label]) => (
              <li key={href}>
                <a href={href} aria-current={active(href) ? 'page' : undefined}>{label}</a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span class={`live live-${status}`} role="status" title="Live updates">
            {status === 'open' ? 'live' : status}
          </span>
          <GitOpsBadge status={gitops} />
          <StoreBadge about={about} />
          <span class={`role role-${session.role}`} data-role={session.role} title={session.name ? `Signed in with the token ${session.name}` : undefined}>
            {session.name ? `${session.name} · ` : ''}
            {session.role === 'viewer' ? 'viewer (read-only)' : 'admin'}
          </span>
          <button type="button" class="secondary" onClick={() => signOut()}>Sign out</button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <StoreBanner about={about} />
        <GitOpsBanner status={gitops} />
        <Router>
          <Route path="/" component={MachinesPage} />
          <Route path="/machines" component={MachinesPage} />
          <Route path="/machines/:mac" component={MachinePage} />
          <Route path="/machines/:mac/approve" component={ApprovePage} />
          <Route path="/audit" component={AuditPage} />
          <Route path="/clusters" component={ClustersPage} />
          <Route path="/profiles" component={ProfilesPage} />
          <Route path="/images" component={ImagesPage} />
          <Route default component={NotFound} />
        </Router>
      </main>
    </div>
  );
}

function NotFound() {
  return (
    <section>
      <h1>Not found</h1>
      <p>
        There is no page here. <a href="/">Back to the machines</a>.
      </p>
    </section>
  );
}
