import { QueryClient } from '@tanstack/react-query';
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { ApiClient } from './api/client';
import { defaultWsUrl, WsClient } from './api/ws';

// The session: the access token lives in memory and in sessionStorage (so a reload of
// the tab keeps you logged in but a new tab or a closed browser does not), never in
// localStorage or a cookie. When the token expires, or the server answers 401, the
// session ends with a message shown on the login screen.

const STORAGE_KEY = 'hft.session';

interface StoredSession {
  token: string;
  username: string;
  expiresAt: number;
}

export interface Session {
  token: string | null;
  username: string | null;
  expiresAt: number | null;
  /** Why the last session ended (shown on the login screen), if it did not end by logout. */
  notice: string | null;
  login: (username: string, password: string) => Promise<void>;
  register: (username: string, password: string) => Promise<void>;
  logout: (notice?: string) => void;
  api: ApiClient;
  ws: WsClient;
  queryClient: QueryClient;
}

const SessionContext = createContext<Session | null>(null);

function readStored(): StoredSession | null {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as StoredSession;
    if (typeof s.token !== 'string' || typeof s.expiresAt !== 'number') return null;
    return s;
  } catch {
    return null;
  }
}

export const SESSION_EXPIRED = 'Your session has expired. Please log in again.';

export function SessionProvider({ children }: { children: ReactNode }) {
  const initial = useMemo(() => readStored(), []);
  const initiallyExpired = initial !== null && initial.expiresAt <= Date.now();
  const [state, setState] = useState<{ token: string | null; username: string | null; expiresAt: number | null }>(() =>
    initial && !initiallyExpired
      ? { token: initial.token, username: initial.username, expiresAt: initial.expiresAt }
      : { token: null, username: null, expiresAt: null },
  );
  const [notice, setNotice] = useState<string | null>(initiallyExpired ? SESSION_EXPIRED : null);
  const tokenRef = useRef<string | null>(state.token);
  tokenRef.current = state.token;

  const queryClient = useMemo(
    () =>
      new QueryClient({
        defaultOptions: {
          queries: { retry: 1, staleTime: 2_000, refetchOnWindowFocus: true },
          mutations: { retry: 0 },
        },
      }),
    [],
  );

  const logoutRef = useRef<(n?: string) => void>(() => undefined);
  const api = useMemo(
    () =>
      new ApiClient({
        getToken: () => tokenRef.current,
        onUnauthorized: () => logoutRef.current(SESSION_EXPIRED),
      }),
    [],
  );
  const ws = useMemo(() => new WsClient(defaultWsUrl()), []);

  const logout = useCallback(
    (why?: string) => {
      sessionStorage.removeItem(STORAGE_KEY);
      tokenRef.current = null;
      setState({ token: null, username: null, expiresAt: null });
      setNotice(why ?? null);
      ws.setToken(null);
      queryClient.clear();
    },
    [queryClient, ws],
  );
  logoutRef.current = logout;

  const login = useCallback(
    async (username: string, password: string) => {
      const res = await api.login(username, password);
      const expiresAt = Date.now() + Math.max(1, res.expires_in) * 1000;
      const stored: StoredSession = { token: res.access_token, username, expiresAt };
      sessionStorage.setItem(STORAGE_KEY, JSON.stringify(stored));
      tokenRef.current = res.access_token;
      setNotice(null);
      setState({ token: res.access_token, username, expiresAt });
    },
    [api],
  );

  const register = useCallback(
    async (username: string, password: string) => {
      await api.register(username, password);
      await login(username, password);
    },
    [api, login],
  );

  useEffect(() => {
    ws.setToken(state.token);
  }, [ws, state.token]);

  useEffect(() => {
    ws.start();
    return () => ws.stop();
  }, [ws]);

  useEffect(() => {
    if (state.expiresAt === null) return;
    const ms = state.expiresAt - Date.now();
    const timer = setTimeout(() => logout(SESSION_EXPIRED), Math.max(0, Math.min(ms, 2 ** 31 - 1)));
    return () => clearTimeout(timer);
  }, [state.expiresAt, logout]);

  const value: Session = {
    ...state,
    notice,
    login,
    register,
    logout,
    api,
    ws,
    queryClient,
  };
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside SessionProvider');
  return s;
}
