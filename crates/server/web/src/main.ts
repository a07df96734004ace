// The StreamIt watch app: a small router over the History API and one view per route.
//   /            live streams          /following   followed live streams (logged in)
//   /login       log in / register     /{username}  the watch page
import './styles.css';
import { api, ApiError, clearSession, saveSession, sessionToken, storedUser, type Stream, type User } from './api';
import { fill, h, hue, initials, plural } from './dom';
import { intercept, navigate, ROUTE_EVENT } from './nav';
import { WatchPage } from './watch';

export interface View {
  /** Called when the route changes away: stop timers, leave rooms. */
  destroy(): void;
}

const main = document.getElementById('main') as HTMLElement;
const topbar = document.getElementById('topbar') as HTMLElement;
let current: View | null = null;

function user(): User | null {
  return sessionToken() ? storedUser() : null;
}

function renderTopbar(): void {
  const u = user();
  const here = location.pathname;
  const link = (href: string, text: string) =>
    h('a', { href, class: 'nav-link', 'aria-current': here === href ? 'page' : null }, text);
  fill(
    topbar,
    h('a', { href: '/', class: 'brand', 'aria-label': 'StreamIt home' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'StreamIt'),
    h('nav', { class: 'nav', 'aria-label': 'Main' }, link('/', 'Live'), u ? link('/following', 'Following') : null),
    h(
      'div',
      { class: 'account' },
      u
        ? [
            h('span', { class: 'account-name' }, u.displayName),
            h('span', { class: 'muted' }, `@${u.username}`),
            h(
              'button',
              {
                class: 'btn btn-ghost',
                type: 'button',
                onclick: async () => {
                  try {
                    await api.logout();
                  } catch {
                    // The session is dropped locally either way.
                  }
                  clearSession();
                  route();
                },
              },
              'Log out',
            ),
          ]
        : h('a', { class: 'btn btn-primary', href: `/login?next=${encodeURIComponent(here)}` }, 'Log in'),
    ),
  );
  for (const a of topbar.querySelectorAll('a')) a.addEventListener('click', intercept);
}

function route(): void {
  current?.destroy();
  current = null;
  renderTopbar();
  const path = location.pathname.replace(/\/+$/, '') || '/';
  if (path === '/') current = listView('live');
  else if (path === '/following') current = listView('following');
  else if (path === '/login') current = loginView();
  else {
    const username = decodeURIComponent(path.slice(1));
    if (/^[A-Za-z0-9_]{1,64}$/.test(username)) current = new WatchPage(main, username, user());
    else current = notFound();
  }
  main.focus({ preventScroll: true });
}

function notFound(): View {
  document.title = 'Not found · StreamIt';
  fill(
    main,
    h('section', { class: 'empty' }, h('h1', {}, 'Page not found'), h('p', { class: 'muted' }, 'There is nothing at this address.'), backHome()),
  );
  return { destroy() {} };
}

function backHome(): HTMLElement {
  const a = h('a', { class: 'btn btn-primary', href: '/' }, 'See who is live');
  a.addEventListener('click', intercept);
  return a;
}

// --- stream lists -------------------------------------------------------------------------

function card(s: Stream): HTMLElement {
  const name = s.user.displayName || s.user.username;
  const a = h(
    'a',
    { class: 'card', href: `/${encodeURIComponent(s.user.username)}`, 'data-stream': s.user.username },
    h(
      'div',
      { class: 'thumb', style: null, 'aria-hidden': 'true' },
      h('span', { class: 'thumb-initials' }, initials(name)),
      h('span', { class: 'badge badge-live' }, 'LIVE'),
      h('span', { class: 'thumb-viewers' }, plural(s.viewerCount, 'viewer', 'viewers')),
    ),
    h(
      'div',
      { class: 'card-body' },
      h('span', { class: 'avatar', 'aria-hidden': 'true' }, initials(name)),
      h(
        'div',
        { class: 'card-text' },
        h('h2', { class: 'card-title' }, s.title),
        h('p', { class: 'card-creator' }, name, h('span', { class: 'muted' }, ` @${s.user.username}`)),
      ),
    ),
  );
  const tone = hue(s.user.username);
  (a.querySelector('.thumb') as HTMLElement).style.setProperty('--tone', String(tone));
  (a.querySelector('.avatar') as HTMLElement).style.setProperty('--tone', String(tone));
  a.setAttribute('aria-label', `${s.title}, ${name}, live, ${plural(s.viewerCount, 'viewer', 'viewers')}`);
  a.addEventListener('click', intercept);
  return a;
}

function listView(kind: 'live' | 'following'): View {
  const title = kind === 'live' ? 'Live now' : 'Following';
  document.title = `${title} · StreamIt`;
  if (kind === 'following' && !user()) {
    const login = h('a', { class: 'btn btn-primary', href: '/login?next=%2Ffollowing' }, 'Log in');
    login.addEventListener('click', intercept);
    fill(
      main,
      h('section', { class: 'empty' }, h('h1', {}, 'Following'), h('p', { class: 'muted' }, 'Log in to see the channels you follow when they go live.'), login),
    );
    return { destroy() {} };
  }
  const grid = h('div', { class: 'grid', 'aria-live': 'polite', 'data-testid': 'stream-list' });
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading…');
  fill(
    main,
    h(
      'section',
      { class: 'page' },
      h('div', { class: 'page-head' }, h('h1', {}, title), status),
      grid,
    ),
  );
  let stopped = false;
  let timer = 0;
  const load = async () => {
    try {
      const streams = kind === 'live' ? await api.live() : await api.following();
      if (stopped) return;
      status.textContent = streams.length ? plural(streams.length, 'channel live', 'channels live') : '';
      if (streams.length) fill(grid, ...streams.map(card));
      else
        fill(
          grid,
          h(
            'div',
            { class: 'empty empty-inline' },
            h('h2', {}, kind === 'live' ? 'Nobody is live right now' : 'None of the channels you follow is live'),
            h('p', { class: 'muted' }, 'This page refreshes by itself.'),
          ),
        );
    } catch (e) {
      if (stopped) return;
      if (e instanceof ApiError && e.status === 401) {
        navigate(`/login?next=${encodeURIComponent(location.pathname)}`, true);
        return;
      }
      status.textContent = (e as Error).message;
    }
    if (!stopped) timer = window.setTimeout(load, 10_000);
  };
  load();
  return {
    destroy() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

// --- log in / register ----------------------------------------------------------------------

function loginView(): View {
  document.title = 'Log in · StreamIt';
  const next = new URLSearchParams(location.search).get('next');
  const target = next && next.startsWith('/') && !next.startsWith('//') ? next : '/';
  let mode: 'login' | 'register' = 'login';
  const error = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'form-error' });
  const username = h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true, minlength: 3, maxlength: 32, pattern: '[A-Za-z0-9_]+' });
  const displayName = h('input', { id: 'displayName', name: 'displayName', autocomplete: 'nickname', maxlength: 64 });
  const password = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true, minlength: 8, maxlength: 256 });
  const displayRow = h('div', { class: 'field', hidden: true }, h('label', { for: 'displayName' }, 'Display name ', h('span', { class: 'muted' }, '(optional)')), displayName);
  const submit = h('button', { class: 'btn btn-primary btn-block', type: 'submit' }, 'Log in');
  const heading = h('h1', {}, 'Log in to StreamIt');
  const switcher = h('button', { class: 'link', type: 'button' }, 'Create an account');
  const switchText = h('span', { class: 'muted' }, 'New here? ');
  const form = h(
    'form',
    { class: 'auth-card', novalidate: true, 'aria-labelledby': 'auth-heading' },
    heading,
    h('div', { class: 'field' }, h('label', { for: 'username' }, 'Username'), username),
    displayRow,
    h('div', { class: 'field' }, h('label', { for: 'password' }, 'Password'), password),
    error,
    submit,
    h('p', { class: 'switch' }, switchText, switcher),
  );
  heading.id = 'auth-heading';
  const setMode = (m: typeof mode) => {
    mode = m;
    heading.textContent = m === 'login' ? 'Log in to StreamIt' : 'Create your account';
    submit.textContent = m === 'login' ? 'Log in' : 'Create account';
    switchText.textContent = m === 'login' ? 'New here? ' : 'Have an account? ';
    switcher.textContent = m === 'login' ? 'Create an account' : 'Log in';
    displayRow.hidden = m === 'login';
    password.autocomplete = m === 'login' ? 'current-password' : 'new-password';
    error.textContent = '';
  };
  switcher.addEventListener('click', () => setMode(mode === 'login' ? 'register' : 'login'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    if (!form.checkValidity()) {
      error.textContent =
        mode === 'register'
          ? 'Username: 3–32 letters, digits or _. Password: at least 8 characters.'
          : 'Enter your username and password.';
      return;
    }
    submit.disabled = true;
    try {
      const auth =
        mode === 'login'
          ? await api.login(username.value.trim(), password.value)
          : await api.register(username.value.trim(), password.value, displayName.value.trim() || undefined);
      saveSession(auth);
      navigate(target, true);
    } catch (err) {
      error.textContent = (err as Error).message;
    } finally {
      submit.disabled = false;
    }
  });
  fill(main, h('section', { class: 'auth' }, form));
  username.focus();
  return { destroy() {} };
}

window.addEventListener('popstate', route);
window.addEventListener(ROUTE_EVENT, route);
route();
