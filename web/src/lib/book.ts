import type { Level, Side } from '../api/types';
import { dec, Decimal, ZERO } from './decimal';

// The order book as the `book:SYM` channel describes it: a snapshot with a sequence
// number, then deltas whose `seq` must follow on by exactly one. A delta sets a level's
// total quantity (0 removes it). A delta that skips a sequence means a message was lost,
// and the book must not be shown as if it were current: the caller resubscribes.

export interface BookLevel {
  price: string;
  quantity: string;
  /** Running total from the best price outward, as a decimal string. */
  cumulative: string;
}

export interface BookView {
  bids: BookLevel[];
  asks: BookLevel[];
  seq: number;
  bestBid: string | null;
  bestAsk: string | null;
  spread: string | null;
}

export type ApplyResult = 'ok' | 'gap' | 'stale' | 'not_ready';

interface LevelChange {
  side: Side;
  price: string;
  quantity: string;
}

/** Extracts level changes from a delta payload, tolerating the shapes a server may use. */
export function parseChanges(data: unknown): LevelChange[] {
  const out: LevelChange[] = [];
  if (!data || typeof data !== 'object') return out;
  const d = data as Record<string, unknown>;
  const pushLevels = (side: Side, levels: unknown) => {
    if (!Array.isArray(levels)) return;
    for (const lv of levels) {
      if (Array.isArray(lv) && lv.length >= 2) {
        out.push({ side, price: String(lv[0]), quantity: String(lv[1]) });
      } else if (lv && typeof lv === 'object') {
        const o = lv as Record<string, unknown>;
        out.push({ side, price: String(o.price), quantity: String(o.quantity ?? o.size ?? '0') });
      }
    }
  };
  pushLevels('buy', d.bids);
  pushLevels('sell', d.asks);
  const changes = d.changes ?? d.levels;
  if (Array.isArray(changes)) {
    for (const c of changes) {
      if (Array.isArray(c) && c.length >= 3) {
        out.push({ side: normalizeSide(c[0]), price: String(c[1]), quantity: String(c[2]) });
      } else if (c && typeof c === 'object') {
        const o = c as Record<string, unknown>;
        out.push({ side: normalizeSide(o.side), price: String(o.price), quantity: String(o.quantity ?? o.size ?? '0') });
      }
    }
  }
  if (out.length === 0 && typeof d.side === 'string' && d.price !== undefined) {
    out.push({ side: normalizeSide(d.side), price: String(d.price), quantity: String(d.quantity ?? '0') });
  }
  return out;
}

function normalizeSide(v: unknown): Side {
  const s = String(v).toLowerCase();
  return s === 'buy' || s === 'bid' || s === 'bids' ? 'buy' : 'sell';
}

export class OrderBook {
  private bids = new Map<string, Decimal>();
  private asks = new Map<string, Decimal>();
  private seq = -1;
  private ready = false;

  /** Replaces the whole book with a snapshot at sequence `seq`. */
  applySnapshot(seq: number, bids: Level[], asks: Level[]): void {
    this.bids = toMap(bids);
    this.asks = toMap(asks);
    this.seq = seq;
    this.ready = true;
  }

  /**
   * Applies one delta. Returns 'gap' (and marks the book not ready) when `seq` skips
   * ahead, 'stale' for a delta already covered by the snapshot, 'not_ready' before
   * any snapshot.
   */
  applyDelta(seq: number, data: unknown): ApplyResult {
    if (!this.ready) return 'not_ready';
    if (seq <= this.seq) return 'stale';
    if (seq !== this.seq + 1) {
      this.ready = false;
      return 'gap';
    }
    for (const c of parseChanges(data)) {
      const side = c.side === 'buy' ? this.bids : this.asks;
      const q = dec(c.quantity);
      const p = dec(c.price);
      if (!p) continue;
      const key = p.toString();
      if (!q || q.isZero()) side.delete(key);
      else side.set(key, q);
    }
    this.seq = seq;
    return 'ok';
  }

  /** Forgets everything until the next snapshot (on resubscribe or reconnect). */
  reset(): void {
    this.ready = false;
    this.seq = -1;
    this.bids.clear();
    this.asks.clear();
  }

  get isReady(): boolean {
    return this.ready;
  }

  get sequence(): number {
    return this.seq;
  }

  /** Best-first levels with cumulative sizes, at most `depth` per side. */
  view(depth = 20): BookView {
    const bids = sorted(this.bids, 'desc', depth);
    const asks = sorted(this.asks, 'asc', depth);
    const bestBid = bids[0]?.price ?? null;
    const bestAsk = asks[0]?.price ?? null;
    let spread: string | null = null;
    if (bestBid !== null && bestAsk !== null) spread = new Decimal(bestAsk).sub(new Decimal(bestBid)).toString();
    return { bids, asks, seq: this.seq, bestBid, bestAsk, spread };
  }
}

function toMap(levels: Level[]): Map<string, Decimal> {
  const m = new Map<string, Decimal>();
  for (const [p, q] of levels) {
    const pd = dec(p);
    const qd = dec(q);
    if (pd && qd && !qd.isZero()) m.set(pd.toString(), qd);
  }
  return m;
}

function sorted(m: Map<string, Decimal>, dir: 'asc' | 'desc', depth: number): BookLevel[] {
  const keys = [...m.keys()].map((k) => new Decimal(k));
  keys.sort((a, b) => (dir === 'asc' ? a.comparedTo(b) : b.comparedTo(a)));
  let cum = ZERO;
  const out: BookLevel[] = [];
  for (const k of keys.slice(0, depth)) {
    const q = m.get(k.toString()) ?? ZERO;
    cum = cum.add(q);
    out.push({ price: k.toString(), quantity: q.toString(), cumulative: cum.toString() });
  }
  return out;
}

/**
 * Walks the opposite side of the book for a market order of `quantity`.
 * Returns the notional, the average price and how much could be filled.
 */
export function walkBook(levels: BookLevel[], quantity: Decimal): { notional: Decimal; filled: Decimal; average: Decimal | null; worst: string | null } {
  let remaining = quantity;
  let notional = ZERO;
  let filled = ZERO;
  let worst: string | null = null;
  for (const lv of levels) {
    if (remaining.lte(0)) break;
    const avail = new Decimal(lv.quantity);
    const take = Decimal.min(avail, remaining);
    notional = notional.add(take.mul(lv.price));
    filled = filled.add(take);
    remaining = remaining.sub(take);
    worst = lv.price;
  }
  return { notional, filled, average: filled.isZero() ? null : notional.div(filled), worst };
}
