import type { Instrument, Trade } from '../api/types';
import type { BookLevel, BookView } from '../lib/book';
import { dec, Decimal, decimalsOf, formatFixed, formatPrice, formatQty, ZERO } from '../lib/decimal';

/** Width of a level's bar as a percentage of the deepest cumulative size on screen. */
function pct(value: string, max: Decimal): string {
  if (max.isZero()) return '0%';
  return `${new Decimal(value).div(max).mul(100).toDecimalPlaces(2).toString()}%`;
}

function maxCumulative(view: BookView): Decimal {
  const lastBid = view.bids[view.bids.length - 1];
  const lastAsk = view.asks[view.asks.length - 1];
  return Decimal.max(dec(lastBid?.cumulative ?? '0') ?? ZERO, dec(lastAsk?.cumulative ?? '0') ?? ZERO);
}

function LadderRow({
  level,
  side,
  ins,
  max,
  onPick,
}: {
  level: BookLevel;
  side: 'bid' | 'ask';
  ins: Instrument;
  max: Decimal;
  onPick: (price: string, side: 'bid' | 'ask') => void;
}) {
  const maxLevelPart = max.isZero() ? '0%' : pct(level.quantity, max);
  return (
    <button
      type="button"
      className={`ladder-row ${side}`}
      onClick={() => onPick(level.price, side)}
      title={`Use ${formatPrice(level.price, ins.tick_size)} in the order ticket`}
      data-testid={`book-${side}`}
      data-price={level.price}
    >
      <span className="bar cum" style={{ width: pct(level.cumulative, max) }} />
      <span className="bar lvl" style={{ width: maxLevelPart }} />
      <span className="px num">{formatPrice(level.price, ins.tick_size)}</span>
      <span className="qty num">{formatQty(level.quantity, ins.lot_size)}</span>
      <span className="cumq num">{formatQty(level.cumulative, ins.lot_size)}</span>
    </button>
  );
}

/** Bids and asks with size and cumulative bars and the spread; a click picks the price. */
export function OrderBookLadder({
  ins,
  view,
  onPick,
  levels = 12,
}: {
  ins: Instrument;
  view: BookView | null;
  onPick: (price: string, side: 'bid' | 'ask') => void;
  levels?: number;
}) {
  if (!view) {
    return (
      <section className="panel book-panel" aria-label="Order book">
        <header className="panel-header">
          <h2>Order book</h2>
        </header>
        <div className="empty">Loading the book…</div>
      </section>
    );
  }
  const asks = view.asks.slice(0, levels);
  const bids = view.bids.slice(0, levels);
  const max = maxCumulative({ ...view, asks, bids });
  const spread = view.spread ? new Decimal(view.spread) : null;
  const mid = view.bestBid && view.bestAsk ? new Decimal(view.bestBid).add(view.bestAsk).div(2) : null;
  const spreadBps = spread && mid && !mid.isZero() ? spread.div(mid).mul(10000).toDecimalPlaces(1).toString() : null;
  return (
    <section className="panel book-panel" aria-label="Order book">
      <header className="panel-header">
        <h2>Order book</h2>
        <span className="muted small">seq {view.seq}</span>
      </header>
      <div className="ladder-head">
        <span>Price</span>
        <span>Size</span>
        <span>Total</span>
      </div>
      <div className="ladder asks" data-testid="book-asks">
        {asks.length === 0 && <div className="empty small">No asks</div>}
        {[...asks].reverse().map((lv) => (
          <LadderRow key={lv.price} level={lv} side="ask" ins={ins} max={max} onPick={onPick} />
        ))}
      </div>
      <div className="spread-row" data-testid="spread">
        <span>Spread</span>
        <span className="num">{spread ? formatPrice(spread, ins.tick_size) : '—'}</span>
        <span className="num muted">{spreadBps ? `${spreadBps} bps` : ''}</span>
      </div>
      <div className="ladder bids" data-testid="book-bids">
        {bids.map((lv) => (
          <LadderRow key={lv.price} level={lv} side="bid" ins={ins} max={max} onPick={onPick} />
        ))}
        {bids.length === 0 && <div className="empty small">No bids</div>}
      </div>
    </section>
  );
}

/** Cumulative depth on both sides of the mid, drawn as two stepped areas. */
export function DepthChart({ ins, view }: { ins: Instrument; view: BookView | null }) {
  const W = 300;
  const H = 120;
  if (!view || (view.bids.length === 0 && view.asks.length === 0)) {
    return (
      <section className="panel depth-panel" aria-label="Depth chart">
        <header className="panel-header">
          <h2>Depth</h2>
        </header>
        <div className="empty small">No depth</div>
      </section>
    );
  }
  // Coordinates are floats: this is drawing, not arithmetic on money. The window is
  // centred on the mid and as wide as the shallower side reaches, so one far-away order
  // cannot squash the other side into a sliver.
  const allBids = view.bids.map((l) => ({ x: Number(l.price), y: Number(l.cumulative) }));
  const allAsks = view.asks.map((l) => ({ x: Number(l.price), y: Number(l.cumulative) }));
  const bb = dec(view.bestBid);
  const ba = dec(view.bestAsk);
  const midD = bb && ba ? bb.add(ba).div(2) : (bb ?? ba ?? ZERO);
  const lastBid = dec(view.bids[view.bids.length - 1]?.price ?? null);
  const lastAsk = dec(view.asks[view.asks.length - 1]?.price ?? null);
  const reaches = [lastBid ? midD.sub(lastBid) : null, lastAsk ? lastAsk.sub(midD) : null].filter(
    (r): r is Decimal => r !== null && r.greaterThan(0),
  );
  const halfD = reaches.length ? Decimal.min(...reaches) : new Decimal(ins.tick_size);
  const lowD = midD.sub(halfD);
  const highD = midD.add(halfD);
  const minX = lowD.toNumber();
  const maxX = highD.toNumber();
  const bidPts = allBids.filter((p) => p.x >= minX);
  const askPts = allAsks.filter((p) => p.x <= maxX);
  const maxY = Math.max(1e-12, ...bidPts.map((p) => p.y), ...askPts.map((p) => p.y));
  const sx = (x: number) => (maxX === minX ? W / 2 : ((x - minX) / (maxX - minX)) * W);
  const sy = (y: number) => H - (y / maxY) * (H - 8);
  const stepPath = (pts: { x: number; y: number }[], closeTo: number) => {
    if (pts.length === 0) return '';
    let d = `M ${sx(pts[0]!.x)} ${H}`;
    let prevY = H;
    for (const p of pts) {
      d += ` L ${sx(p.x)} ${prevY} L ${sx(p.x)} ${sy(p.y)}`;
      prevY = sy(p.y);
    }
    d += ` L ${closeTo} ${prevY} L ${closeTo} ${H} Z`;
    return d;
  };
  const places = decimalsOf(ins.tick_size);
  return (
    <section className="panel depth-panel" aria-label="Depth chart">
      <header className="panel-header">
        <h2>Depth</h2>
        <span className="muted small num">mid {formatFixed(midD, places + 1)}</span>
      </header>
      <svg className="depth-svg" viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label="Cumulative depth">
        <path d={stepPath(bidPts, 0)} fill="rgba(22,199,132,0.25)" stroke="#16c784" strokeWidth="1" />
        <path d={stepPath(askPts, W)} fill="rgba(234,57,67,0.25)" stroke="#ea3943" strokeWidth="1" />
        <line x1={W / 2} x2={W / 2} y1={0} y2={H} stroke="#2a333f" strokeDasharray="3 3" />
      </svg>
      <div className="depth-axis num">
        <span>{formatFixed(lowD, places)}</span>
        <span>{formatFixed(highD, places)}</span>
      </div>
    </section>
  );
}

function timeOf(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleTimeString(undefined, { hour12: false });
}

/** Recent trades, colored by the aggressor (taker) side. */
export function TradesTape({ ins, trades }: { ins: Instrument; trades: Trade[] }) {
  return (
    <section className="panel tape-panel" aria-label="Recent trades">
      <header className="panel-header">
        <h2>Trades</h2>
      </header>
      <div className="tape-head">
        <span>Price</span>
        <span>Size</span>
        <span>Time</span>
      </div>
      <div className="tape" data-testid="trades">
        {trades.length === 0 && <div className="empty small">No trades yet</div>}
        {trades.map((t) => (
          <div key={t.trade_id} className={`tape-row ${t.taker_side === 'buy' ? 'up' : 'down'}`} title={`${t.taker_side} aggressor`}>
            <span className="num">{formatPrice(t.price, ins.tick_size)}</span>
            <span className="num">{formatQty(t.quantity, ins.lot_size)}</span>
            <span className="num muted">{timeOf(t.time)}</span>
          </div>
        ))}
      </div>
    </section>
  );
}
