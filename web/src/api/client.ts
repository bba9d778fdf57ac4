import type {
  Account,
  BookSnapshot,
  Candle,
  CandleInterval,
  Fill,
  Instrument,
  Order,
  OrderAmend,
  OrderCreate,
  Portfolio,
  Position,
  RiskLimits,
  TokenResponse,
  Trade,
  User,
} from './types';

export const API_BASE = '/api/v1';

/** An error answered by the backend (or a network failure, status 0), with its code and message. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | null;

  constructor(status: number, code: string, message: string, field: string | null = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/** Turns any error body the backend may send into an ApiError (contract shape first). */
export function parseErrorBody(status: number, body: unknown, statusText = ''): ApiError {
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    const err = b.error;
    if (err && typeof err === 'object') {
      const e = err as Record<string, unknown>;
      return new ApiError(
        status,
        typeof e.code === 'string' ? e.code : `http_${status}`,
        typeof e.message === 'string' ? e.message : statusText || `HTTP ${status}`,
        typeof e.field === 'string' ? e.field : null,
      );
    }
    // FastAPI's default shapes, in case a route answers before the contract handler does.
    const detail = b.detail;
    if (typeof detail === 'string') return new ApiError(status, `http_${status}`, detail);
    if (Array.isArray(detail) && detail.length > 0) {
      const first = detail[0] as { msg?: unknown; loc?: unknown };
      const loc = Array.isArray(first.loc) ? first.loc.filter((x) => x !== 'body') : [];
      const field = loc.length > 0 ? String(loc[loc.length - 1]) : null;
      const msg = typeof first.msg === 'string' ? first.msg : 'invalid request';
      return new ApiError(status, 'validation_error', field ? `${field}: ${msg}` : msg, field);
    }
  }
  return new ApiError(status, `http_${status}`, statusText || `HTTP ${status}`);
}

export interface ClientOptions {
  getToken: () => string | null;
  onUnauthorized: () => void;
}

type Query = Record<string, string | number | undefined>;

function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== '') params.set(k, String(v));
  }
  const s = params.toString();
  return s ? `${path}?${s}` : path;
}

/** The typed REST client: one method per endpoint of shared/API.md used by the UI. */
export class ApiClient {
  private readonly opts: ClientOptions;

  constructor(opts: ClientOptions) {
    this.opts = opts;
  }

  private async request<T>(method: string, path: string, body?: unknown, form?: URLSearchParams): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    const token = this.opts.getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    let payload: BodyInit | undefined;
    if (form) {
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
      payload = form;
    } else if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetch(`${API_BASE}${path}`, { method, headers, body: payload });
    } catch {
      throw new ApiError(0, 'network_error', 'Cannot reach the server. Check your connection.');
    }
    const text = await res.text();
    let parsed: unknown = null;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = null;
      }
    }
    if (!res.ok) {
      const err = parseErrorBody(res.status, parsed, res.statusText);
      if (res.status === 401 && token) this.opts.onUnauthorized();
      if (res.status === 429) {
        const retry = res.headers.get('Retry-After');
        if (retry) return Promise.reject(new ApiError(429, err.code, `${err.message} (retry in ${retry}s)`, err.field));
      }
      throw err;
    }
    return parsed as T;
  }

  register(username: string, password: string): Promise<User> {
    return this.request('POST', '/auth/register', { username, password });
  }

  login(username: string, password: string): Promise<TokenResponse> {
    const form = new URLSearchParams({ username, password, grant_type: 'password' });
    return this.request('POST', '/auth/token', undefined, form);
  }

  me(): Promise<User> {
    return this.request('GET', '/auth/me');
  }

  account(): Promise<Account> {
    return this.request('GET', '/account');
  }

  instruments(): Promise<Instrument[]> {
    return this.request('GET', '/instruments');
  }

  placeOrder(order: OrderCreate): Promise<Order> {
    return this.request('POST', '/orders', order);
  }

  orders(status: 'open' | 'closed' | 'all', symbol?: string, limit = 100): Promise<Order[]> {
    return this.request('GET', withQuery('/orders', { status, symbol, limit }));
  }

  order(id: string): Promise<Order> {
    return this.request('GET', `/orders/${encodeURIComponent(id)}`);
  }

  amendOrder(id: string, amend: OrderAmend): Promise<Order> {
    return this.request('PATCH', `/orders/${encodeURIComponent(id)}`, amend);
  }

  cancelOrder(id: string): Promise<Order> {
    return this.request('DELETE', `/orders/${encodeURIComponent(id)}`);
  }

  cancelAll(symbol?: string): Promise<unknown> {
    return this.request('DELETE', withQuery('/orders', { symbol }));
  }

  fills(symbol?: string, limit = 100): Promise<Fill[]> {
    return this.request('GET', withQuery('/fills', { symbol, limit }));
  }

  positions(): Promise<Position[]> {
    return this.request('GET', '/positions');
  }

  portfolio(): Promise<Portfolio> {
    return this.request('GET', '/portfolio');
  }

  book(symbol: string, depth = 20): Promise<BookSnapshot> {
    return this.request('GET', withQuery(`/markets/${encodeURIComponent(symbol)}/book`, { depth }));
  }

  trades(symbol: string, limit = 50): Promise<Trade[]> {
    return this.request('GET', withQuery(`/markets/${encodeURIComponent(symbol)}/trades`, { limit }));
  }

  candles(symbol: string, interval: CandleInterval, limit = 300): Promise<Candle[]> {
    return this.request('GET', withQuery(`/markets/${encodeURIComponent(symbol)}/candles`, { interval, limit }));
  }

  riskLimits(): Promise<RiskLimits> {
    return this.request('GET', '/risk/limits');
  }

  killSwitch(enabled: boolean): Promise<unknown> {
    return this.request('POST', '/risk/kill-switch', { enabled });
  }
}
