import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import type { Account, Candle, CandleInterval, Fill, Instrument, Order, Ticker, Trade, WsMessage } from './api/types';
import type { WsStatus } from './api/ws';
import { OrderBook, type BookView } from './lib/book';
import { useSession } from './session';
import { useToasts } from './toasts';
import { formatPrice, formatQty } from './lib/decimal';

export const keys = {
  instruments: ['instruments'] as const,
  account: ['account'] as const,
  portfolio: ['portfolio'] as const,
  positions: ['positions'] as const,
  orders: (status: string) => ['orders', status] as const,
  fills: ['fills'] as const,
  risk: ['risk'] as const,
};

export function useInstruments() {
  const { api } = useSession();
  return useQuery({ queryKey: keys.instruments, queryFn: () => api.instruments(), staleTime: 30_000 });
}

export function useInstrumentMap(): Map<string, Instrument> {
  const { data } = useInstruments();
  return useMemo(() => new Map((data ?? []).map((i) => [i.symbol, i])), [data]);
}

export function useAccount() {
  const { api, token } = useSession();
  return useQuery({ queryKey: keys.account, queryFn: () => api.account(), enabled: !!token, refetchInterval: 15_000 });
}

export function usePortfolio() {
  const { api, token } = useSession();
  return useQuery({ queryKey: keys.portfolio, queryFn: () => api.portfolio(), enabled: !!token, refetchInterval: 5_000 });
}

export function useOrders(status: 'open' | 'closed' | 'all') {
  const { api, token } = useSession();
  return useQuery({ queryKey: keys.orders(status), queryFn: () => api.orders(status), enabled: !!token });
}

export function useFills() {
  const { api, token } = useSession();
  return useQuery({ queryKey: keys.fills, queryFn: () => api.fills(undefined, 200), enabled: !!token });
}

export function useWsStatus(): WsStatus {
  const { ws } = useSession();
  return useSyncExternalStore(
    (cb) => ws.onStatus(cb),
    () => ws.status,
  );
}

/** Calls `onMessage` for every message on `channel` while mounted (null = no subscription). */
export function useChannel(channel: string | null, onMessage: (m: WsMessage) => void, onReset?: () => void): void {
  const { ws } = useSession();
  const msgRef = useRef(onMessage);
  const resetRef = useRef(onReset);
  useEffect(() => {
    msgRef.current = onMessage;
    resetRef.current = onReset;
  });
  useEffect(() => {
    if (!channel) return;
    return ws.subscribe(channel, {
      onMessage: (m) => msgRef.current(m),
      onReset: () => resetRef.current?.(),
    });
  }, [ws, channel]);
}

/** Items of a message's data: a single object or an array of them. */
export function items<T>(data: unknown): T[] {
  if (Array.isArray(data)) return data as T[];
  if (data && typeof data === 'object') {
    const d = data as Record<string, unknown>;
    for (const k of ['trades', 'items', 'fills', 'orders']) if (Array.isArray(d[k])) return d[k] as T[];
    return [data as T];
  }
  return [];
}

/** Live ticker for a symbol (last price, change), from the `ticker:SYM` channel. */
export function useTicker(symbol: string | null): Ticker | null {
  const [ticker, setTicker] = useState<{ symbol: string | null; t: Ticker | null }>({ symbol, t: null });
  useChannel(symbol ? `ticker:${symbol}` : null, (m) => {
    if (m.data && typeof m.data === 'object') setTicker({ symbol, t: m.data as Ticker });
  });
  return ticker.symbol === symbol ? ticker.t : null;
}

/**
 * The live order book of a symbol. The REST snapshot paints the ladder at once, but only
 * the channel's own snapshot starts the delta chain: REST carries the engine's sequence,
 * the channel its own contiguous `seq`, and the two must not be mixed.
 */
export function useBook(symbol: string | null, depth = 20): { view: BookView | null; live: boolean } {
  const { api, ws } = useSession();
  const bookRef = useRef<{ symbol: string | null; book: OrderBook }>({ symbol, book: new OrderBook() });
  if (bookRef.current.symbol !== symbol) bookRef.current = { symbol, book: new OrderBook() };
  const [version, setVersion] = useState(0);
  const [rest, setRest] = useState<{ symbol: string; view: BookView } | null>(null);
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);
  const channel = symbol ? `book:${symbol}` : null;

  // Coalesce bursts of deltas into at most ~12 renders a second.
  const bump = () => {
    if (pending.current) return;
    pending.current = setTimeout(() => {
      pending.current = null;
      setVersion((v) => v + 1);
    }, 80);
  };
  useEffect(
    () => () => {
      if (pending.current) clearTimeout(pending.current);
    },
    [],
  );

  useEffect(() => {
    if (!symbol) return;
    let cancelled = false;
    api
      .book(symbol, depth)
      .then((snap) => {
        if (cancelled) return;
        const b = new OrderBook();
        b.applySnapshot(0, snap.bids, snap.asks);
        setRest({ symbol, view: { ...b.view(depth), seq: snap.sequence } });
      })
      .catch(() => undefined);
    return () => {
      cancelled = true;
    };
  }, [api, symbol, depth]);

  useChannel(
    channel,
    (m) => {
      const book = bookRef.current.book;
      const seq = typeof m.seq === 'number' ? m.seq : Number(m.seq);
      if (m.type === 'snapshot') {
        const d = (m.data ?? {}) as { bids?: [string, string][]; asks?: [string, string][] };
        book.applySnapshot(Number.isFinite(seq) ? seq : 0, d.bids ?? [], d.asks ?? []);
        bump();
        return;
      }
      const r = book.applyDelta(seq, m.data);
      if (r === 'ok') bump();
      else if (r === 'gap' && channel) {
        ws.resubscribe(channel);
        bump();
      }
    },
    () => {
      bookRef.current.book.reset();
      bump();
    },
  );

  const book = bookRef.current.book;
  // `version` is the render trigger for the mutable book.
  const liveView = useMemo(() => (book.isReady ? book.view(depth) : null), [book, depth, version]); // eslint-disable-line react-hooks/exhaustive-deps
  const wasLive = useRef<string | null>(null);
  if (liveView) {
    wasLive.current = symbol;
    return { view: liveView, live: true };
  }
  // Once the stream has delivered, an old REST picture would be stale: show nothing until
  // the fresh snapshot arrives.
  if (wasLive.current === symbol) return { view: null, live: false };
  return { view: rest && rest.symbol === symbol ? rest.view : null, live: false };
}

/** Recent trades (newest first): REST history, then the `trades:SYM` stream. */
export function useTrades(symbol: string | null, limit = 60): Trade[] {
  const { api } = useSession();
  const [state, setState] = useState<{ symbol: string | null; trades: Trade[] }>({ symbol, trades: [] });
  useEffect(() => {
    if (!symbol) return;
    let cancelled = false;
    api
      .trades(symbol, limit)
      .then((t) => {
        if (cancelled) return;
        setState((s) => {
          const live = s.symbol === symbol ? s.trades : [];
          return { symbol, trades: mergeTrades(live, t, limit) };
        });
      })
      .catch(() => undefined);
    return () => {
      cancelled = true;
    };
  }, [api, symbol, limit]);
  useChannel(symbol ? `trades:${symbol}` : null, (m) => {
    const incoming = items<Trade>(m.data);
    setState((s) => ({ symbol, trades: mergeTrades(incoming, s.symbol === symbol ? s.trades : [], limit) }));
  });
  return state.symbol === symbol ? state.trades : [];
}

function tradeTime(t: Trade): number {
  const n = Date.parse(t.time);
  return Number.isFinite(n) ? n : 0;
}

/** Merges two trade lists newest first without duplicates (by trade id). */
export function mergeTrades(a: Trade[], b: Trade[], limit: number): Trade[] {
  const seen = new Set<string>();
  const out: Trade[] = [];
  for (const t of [...a, ...b]) {
    const id = String(t.trade_id);
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(t);
  }
  out.sort((x, y) => tradeTime(y) - tradeTime(x));
  return out.slice(0, limit);
}

/** Candles for the chart: REST history, then `candles:SYM:INTERVAL` updates. */
export function useCandles(symbol: string | null, interval: CandleInterval): { candles: Candle[]; version: number } {
  const { api } = useSession();
  const [state, setState] = useState<{ key: string; candles: Candle[]; version: number }>({ key: '', candles: [], version: 0 });
  const key = `${symbol}:${interval}`;
  useEffect(() => {
    if (!symbol) return;
    let cancelled = false;
    api
      .candles(symbol, interval, 500)
      .then((c) => {
        if (cancelled) return;
        setState((s) => ({ key, candles: mergeCandles(c, s.key === key ? s.candles : []), version: s.version + 1 }));
      })
      .catch(() => undefined);
    return () => {
      cancelled = true;
    };
  }, [api, symbol, interval, key]);
  useChannel(symbol ? `candles:${symbol}:${interval}` : null, (m) => {
    const incoming = items<Candle>(m.data);
    setState((s) => ({ key, candles: mergeCandles(s.key === key ? s.candles : [], incoming), version: s.version + 1 }));
  });
  return state.key === key ? state : { candles: [], version: 0 };
}

/** Candle time in whole seconds since the epoch (ISO string or seconds/milliseconds). */
export function candleSeconds(c: Candle): number {
  if (typeof c.time === 'number') return c.time > 1e12 ? Math.floor(c.time / 1000) : c.time;
  const n = Number(c.time);
  if (Number.isFinite(n)) return n > 1e12 ? Math.floor(n / 1000) : n;
  return Math.floor(Date.parse(c.time) / 1000);
}

export function mergeCandles(base: Candle[], updates: Candle[]): Candle[] {
  const m = new Map<number, Candle>();
  for (const c of base) m.set(candleSeconds(c), c);
  for (const c of updates) m.set(candleSeconds(c), c);
  return [...m.entries()].sort((a, b) => a[0] - b[0]).map(([, c]) => c);
}

/**
 * Keeps the private tables live: `orders`, `fills` and `account` messages update the
 * TanStack Query cache and raise toasts for fills and rejects.
 */
export function usePrivateStreams(): void {
  const { token } = useSession();
  const qc = useQueryClient();
  const toasts = useToasts();
  const instruments = useInstrumentMap();
  const enabled = !!token;

  useChannel(enabled ? 'orders' : null, (m) => {
    for (const o of items<Order>(m.data)) {
      if (o.status === 'rejected' || (o.status === 'canceled' && o.reason && o.reason !== 'user')) {
        toasts.push('reject', `${o.side.toUpperCase()} ${o.symbol} ${o.status}`, humanReason(o.reason), `rej:${o.id}:${o.status}`);
      }
    }
    void qc.invalidateQueries({ queryKey: ['orders'] });
    void qc.invalidateQueries({ queryKey: keys.account });
  });
  useChannel(enabled ? 'fills' : null, (m) => {
    for (const f of items<Fill>(m.data)) {
      const ins = f.symbol ? instruments.get(f.symbol) : undefined;
      const qty = ins ? formatQty(f.quantity, ins.lot_size) : f.quantity;
      const px = ins ? formatPrice(f.price, ins.tick_size) : f.price;
      const side = f.side ? `${f.side === 'buy' ? 'Bought' : 'Sold'} ` : 'Filled ';
      toasts.push('fill', `${side}${qty} ${f.symbol ?? ''} @ ${px}`, f.liquidity ? `${f.liquidity} fill` : undefined, `fill:${f.trade_id}:${f.order_id ?? ''}`);
    }
    void qc.invalidateQueries({ queryKey: keys.fills });
    void qc.invalidateQueries({ queryKey: ['orders'] });
    void qc.invalidateQueries({ queryKey: keys.portfolio });
    void qc.invalidateQueries({ queryKey: keys.positions });
    void qc.invalidateQueries({ queryKey: keys.account });
  });
  useChannel(enabled ? 'account' : null, (m) => {
    if (m.data && typeof m.data === 'object' && 'cash' in (m.data as object)) {
      qc.setQueryData<Account>(keys.account, (old) => ({ ...(old ?? ({} as Account)), ...(m.data as Partial<Account>) }));
    } else {
      void qc.invalidateQueries({ queryKey: keys.account });
    }
    void qc.invalidateQueries({ queryKey: keys.portfolio });
  });
}

const REASONS: Record<string, string> = {
  user: 'Canceled by you',
  ioc_remainder: 'Unfilled remainder of an IOC order canceled',
  fok_unfilled: 'Fill-or-kill order could not be filled completely',
  post_only_would_take: 'Post-only order would have taken liquidity',
  self_trade: 'Canceled by self-trade prevention',
  risk: 'Rejected by risk checks',
  kill_switch: 'Trading is halted (kill switch)',
  market_no_liquidity: 'No liquidity for the market order',
  engine_unavailable: 'The matching engine was unavailable',
};

export function humanReason(reason: string | null | undefined): string | undefined {
  if (!reason) return undefined;
  return REASONS[reason] ?? reason.replace(/_/g, ' ');
}
