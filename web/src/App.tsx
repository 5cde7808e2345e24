/** The shell: who is signed in, the navigation, and which page the path shows. */
import { Component, lazy, Suspense, useCallback, useEffect, useRef, useState, type ComponentType, type ReactNode } from 'react';
import { api, onSessionEnded, setCsrfToken, type Me } from './api';
import { startLive, stopLive, useLiveConnected } from './live';
import { Link, match, navigate, usePath } from './router';
import { SessionContext, type Session } from './session';
import { Loading, Notice } from './ui';
import { SignIn } from './pages/SignIn';

// Each page is its own chunk, fetched when first shown: the first load (the sign-in form) parses
// React and the shell only.
const RELOADED = 'fleetcast.reloaded_for_chunks';

function lazyPage<P extends object>(load: () => Promise<ComponentType<P>>) {
  return lazy(async () => {
    try {
      const component = await load();
      sessionStorage.removeItem(RELOADED);
      return { default: component };
    } catch (err) {
      // A new build replaced the chunks this page was served with: load the new build, once.
      if (!sessionStorage.getItem(RELOADED)) {
        sessionStorage.setItem(RELOADED, '1');
        location.reload();
        return new Promise<never>(() => undefined);
      }
      throw err;
    }
  });
}

const Home = lazyPage(() => import('./pages/Home').then((m) => m.Home));
const Devices = lazyPage(() => import('./pages/Devices').then((m) => m.Devices));
const Leads = lazyPage(() => import('./pages/Leads').then((m) => m.Leads));
const Campaigns = lazyPage(() => import('./pages/Campaigns').then((m) => m.Campaigns));
const CampaignEditor = lazyPage(() => import('./pages/CampaignEditor').then((m) => m.CampaignEditor));
const CampaignDetail = lazyPage(() => import('./pages/CampaignDetail').then((m) => m.CampaignDetail));
const Sequences = lazyPage(() => import('./pages/Sequences').then((m) => m.Sequences));
const SequenceDetail = lazyPage(() => import('./pages/SequenceDetail').then((m) => m.SequenceDetail));
const Monitoring = lazyPage(() => import('./pages/Monitoring').then((m) => m.Monitoring));
const Settings = lazyPage(() => import('./pages/Settings').then((m) => m.Settings));

/** A page that failed to render (or to load) says so instead of blanking the whole app. */
class PageBoundary extends Component<{ path: string; children: ReactNode }, { error: Error | null; path: string }> {
  override state = { error: null as Error | null, path: this.props.path };
  static getDerivedStateFromError(error: Error) {
    return { error };
  }
  static getDerivedStateFromProps(props: { path: string }, state: { error: Error | null; path: string }) {
    // Another page starts afresh.
    return props.path !== state.path ? { error: null, path: props.path } : null;
  }
  override render() {
    if (this.state.error) {
      return (
        <section>
          <h1>This page could not be shown</h1>
          <Notice error={this.state.error.message} />
          <button type="button" onClick={() => location.reload()}>
            Reload
          </button>
        </section>
      );
    }
    return this.props.children;
  }
}

const SIGNED_IN = 'fleetcast.signed_in';

const NAV: { href: string; label: string }[] = [
  { href: '/', label: 'Home' },
  { href: '/devices', label: 'Devices' },
  { href: '/leads', label: 'Leads' },
  { href: '/campaigns', label: 'Campaigns' },
  { href: '/sequences', label: 'Sequences' },
  { href: '/monitoring', label: 'Monitoring' },
  { href: '/settings', label: 'Settings' },
];

function route(path: string): { title: string; page: ReactNode } {
  let m: Record<string, string> | null;
  if (path === '/' || path === '') return { title: 'Home', page: <Home /> };
  if (path === '/devices') return { title: 'Devices', page: <Devices /> };
  if (path === '/leads') return { title: 'Leads', page: <Leads /> };
  if (path === '/campaigns') return { title: 'Campaigns', page: <Campaigns /> };
  if (path === '/campaigns/new') return { title: 'New campaign', page: <CampaignEditor /> };
  if ((m = match('/campaigns/:id/edit', path))) return { title: 'Edit campaign', page: <CampaignEditor key={m.id} id={Number(m.id)} /> };
  if ((m = match('/campaigns/:id', path))) return { title: 'Campaign', page: <CampaignDetail key={m.id} id={Number(m.id)} /> };
  if (path === '/sequences') return { title: 'Sequences', page: <Sequences /> };
  if ((m = match('/sequences/:id', path))) return { title: 'Sequence', page: <SequenceDetail key={m.id} id={Number(m.id)} /> };
  if (path === '/monitoring') return { title: 'Monitoring', page: <Monitoring /> };
  if (path === '/settings') return { title: 'Settings', page: <Settings /> };
  return {
    title: 'Not found',
    page: (
      <section>
        <h1>Page not found</h1>
        <p>
          There is no page at <code>{path}</code>. <Link href="/">Go home</Link>.
        </p>
      </section>
    ),
  };
}

function active(href: string, path: string): boolean {
  return href === '/' ? path === '/' : path === href || path.startsWith(`${href}/`);
}

function Shell({ session }: { session: Session }) {
  const path = usePath();
  const live = useLiveConnected();
  const [menuOpen, setMenuOpen] = useState(false);
  const { title, page } = route(path);
  const firstPath = useRef(path);
  useEffect(() => {
    document.title = `${title} · Fleetcast`;
    setMenuOpen(false);
    // After moving to another page, focus goes to its content (a page load would start from the top,
    // where "Skip to content" is the first stop; the first page shown keeps that).
    if (path !== firstPath.current) {
      firstPath.current = '';
      document.getElementById('main')?.focus({ preventScroll: true });
    }
  }, [path, title]);
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link href="/" className="brand">
          <span className="logo" aria-hidden="true">
            F
          </span>
          Fleetcast
        </Link>
        <button type="button" className="menu-toggle ghost" aria-expanded={menuOpen} aria-controls="nav" onClick={() => setMenuOpen((o) => !o)}>
          Menu
        </button>
        <nav id="nav" aria-label="Main" className={menuOpen ? 'open' : ''}>
          <ul>
            {NAV.map((n) => (
              <li key={n.href}>
                <Link href={n.href} aria-current={active(n.href, path) ? 'page' : undefined}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="account">
          <span className={`live-dot${live ? ' up' : ''}`} role="status" aria-label={live ? 'Live updates connected' : 'Live updates reconnecting'} title={live ? 'Live' : 'Reconnecting'} />
          <span className="who" title={session.me.email}>
            {session.me.name || session.me.email}
          </span>
          <button type="button" className="ghost" onClick={() => void session.signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <PageBoundary path={path}>
          <Suspense fallback={<Loading />}>{page}</Suspense>
        </PageBoundary>
      </main>
    </div>
  );
}

export function App() {
  const [me, setMe] = useState<Me | null | undefined>(undefined);

  const ended = useCallback(() => {
    localStorage.removeItem(SIGNED_IN);
    setCsrfToken(null);
    setMe(null);
  }, []);

  const refresh = useCallback(async () => {
    try {
      const m = await api<Me>('/me');
      localStorage.setItem(SIGNED_IN, '1');
      setCsrfToken(m.csrf_token);
      setMe(m);
    } catch {
      ended();
    }
  }, [ended]);

  useEffect(() => {
    onSessionEnded(ended);
    // The session cookie is HttpOnly, so the page cannot see it; this hint saves a visitor who never
    // signed in here a 401 from /me before the sign-in form.
    if (localStorage.getItem(SIGNED_IN) === '1') void refresh();
    else setMe(null);
  }, [refresh, ended]);

  useEffect(() => {
    if (me) startLive(ended);
    else stopLive();
  }, [me, ended]);

  const signOut = useCallback(async () => {
    try {
      await api('/auth/logout', { method: 'POST' });
    } finally {
      ended();
      navigate('/', { replace: true });
    }
  }, [ended]);

  if (me === undefined) {
    return (
      <main id="main" className="center">
        <Loading />
      </main>
    );
  }
  if (me === null) return <SignIn onSignedIn={refresh} />;
  return (
    <SessionContext.Provider value={{ me, refresh, signOut }}>
      <Shell session={{ me, refresh, signOut }} />
    </SessionContext.Provider>
  );
}
