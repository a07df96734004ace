// The StreamIt REST API on the same origin (`/api/...`): envelopes, the session token and the
// shapes this page reads (crates/api/src/types.rs is the contract).

export interface User {
  id: string;
  username: string;
  displayName: string;
  role: 'viewer' | 'creator' | 'admin';
  isApproved: boolean;
}

export interface Stream {
  id: string;
  title: string;
  description: string | null;
  isLive: boolean;
  isChatEnabled: boolean;
  isChatDelayed: boolean;
  isChatFollowersOnly: boolean;
  userId: string;
  user: { id: string; username: string; displayName: string };
  viewerCount: number;
  watchUrl?: string;
}

export interface ChatAccess {
  canSend: boolean;
  reason?: string;
  slowModeSecs?: number;
  timedOutUntil?: number;
}

export interface ViewerToken {
  token: string;
  wsUrl: string;
  identity: string;
  name: string;
  role?: string;
  chat?: ChatAccess;
}

export interface AuthResponse {
  token: string;
  expiresAt: number;
  user: User;
}

/** An error answer of the API: the HTTP status and the server's message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const TOKEN_KEY = 'streamit.session';
const USER_KEY = 'streamit.user';

export function sessionToken(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

export function storedUser(): User | null {
  try {
    const raw = localStorage.getItem(USER_KEY);
    return raw ? (JSON.parse(raw) as User) : null;
  } catch {
    return null;
  }
}

export function saveSession(auth: AuthResponse): void {
  localStorage.setItem(TOKEN_KEY, auth.token);
  localStorage.setItem(USER_KEY, JSON.stringify(auth.user));
}

export function clearSession(): void {
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(USER_KEY);
}

interface CallOptions {
  body?: unknown;
  /** Send the session token (default: when there is one). */
  auth?: boolean;
  signal?: AbortSignal;
}

export async function call<T>(method: string, path: string, opts: CallOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  const token = sessionToken();
  if (token && opts.auth !== false) headers.Authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetch(`/api${path}`, {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, 'Cannot reach StreamIt. Check your connection.');
  }
  let envelope: { success?: boolean; data?: T; error?: string } = {};
  try {
    envelope = await res.json();
  } catch {
    // A proxy's HTML error page: fall through with the status.
  }
  if (!res.ok || envelope.success === false) {
    if (res.status === 401 && token && opts.auth !== false) clearSession();
    throw new ApiError(res.status, envelope.error || `Request failed (${res.status})`);
  }
  return envelope.data as T;
}

export const api = {
  me: () => call<User>('GET', '/auth/me'),
  login: (username: string, password: string) =>
    call<AuthResponse>('POST', '/auth/login', { body: { username, password }, auth: false }),
  register: (username: string, password: string, displayName?: string) =>
    call<AuthResponse>('POST', '/auth/register', {
      body: displayName ? { username, password, displayName } : { username, password },
      auth: false,
    }),
  logout: () => call<unknown>('POST', '/auth/logout'),
  live: () => call<Stream[]>('GET', '/viewer/live'),
  following: () => call<Stream[]>('GET', '/viewer/following'),
  stream: (username: string, signal?: AbortSignal) =>
    call<Stream>('GET', `/viewer/stream/${encodeURIComponent(username)}`, { signal }),
  viewerToken: (hostId: string, guestName?: string) =>
    call<ViewerToken>('POST', '/viewer/token', {
      body: guestName ? { hostId, guestName } : { hostId },
      auth: !guestName,
    }),
  follow: (username: string) => call<{ following: boolean }>('POST', `/users/${encodeURIComponent(username)}/follow`),
  unfollow: (username: string) =>
    call<{ following: boolean }>('DELETE', `/users/${encodeURIComponent(username)}/follow`),
};
