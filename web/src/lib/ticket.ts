import type { Instrument, OrderCreate, OrderType, Side, TimeInForce } from '../api/types';
import type { BookLevel } from './book';
import { walkBook } from './book';
import { dec, decimalsOf, Decimal, formatPrice, formatQty, isMultipleOf, parseInput } from './decimal';

// The order ticket's rules, kept free of React so they can be tested one by one.
// They mirror the venue's checks (tick, lot, min/max, price band) and the broker's
// buying-power check for buys, so a person sees the problem before sending.

export interface TicketInput {
  side: Side;
  type: OrderType;
  timeInForce: TimeInForce;
  postOnly: boolean;
  quantity: string;
  price: string;
}

export interface TicketContext {
  instrument: Instrument;
  /** Cash available for new buys (decimal string), null when unknown. */
  buyingPower: string | null;
  /** Opposite side for a market order: asks for a buy, bids for a sell (best first). */
  bookAsks: BookLevel[];
  bookBids: BookLevel[];
  tradingEnabled: boolean;
}

export interface TicketErrors {
  quantity?: string;
  price?: string;
  form?: string;
}

export interface TicketEstimate {
  /** Notional (price x quantity), decimal string, null when it cannot be estimated. */
  notional: string | null;
  /** Average or limit price the estimate used. */
  price: string | null;
  /** Set for market orders the visible book cannot fill completely. */
  shortfall: string | null;
}

export interface TicketResult {
  errors: TicketErrors;
  estimate: TicketEstimate;
  valid: boolean;
  order: OrderCreate | null;
}

/** Validates the ticket and estimates its cost; `order` is the request body when valid. */
export function evaluateTicket(input: TicketInput, ctx: TicketContext): TicketResult {
  const ins = ctx.instrument;
  const errors: TicketErrors = {};
  const estimate: TicketEstimate = { notional: null, price: null, shortfall: null };

  let qty: Decimal | null = null;
  const q = parseInput(input.quantity, 'quantity');
  if (!q.ok) errors.quantity = q.error;
  else if (q.value.decimalPlaces() > decimalsOf(ins.lot_size) || !isMultipleOf(q.value, ins.lot_size))
    errors.quantity = `Quantity must be a multiple of the lot size ${ins.lot_size}`;
  else if (dec(ins.min_quantity) && q.value.lessThan(dec(ins.min_quantity) as Decimal))
    errors.quantity = `Minimum quantity is ${formatQty(ins.min_quantity, ins.lot_size)}`;
  else if (dec(ins.max_quantity) && q.value.greaterThan(dec(ins.max_quantity) as Decimal))
    errors.quantity = `Maximum quantity is ${formatQty(ins.max_quantity, ins.lot_size)}`;
  else qty = q.value;

  let price: Decimal | null = null;
  if (input.type === 'limit') {
    const p = parseInput(input.price, 'price');
    if (!p.ok) errors.price = p.error;
    else if (p.value.decimalPlaces() > decimalsOf(ins.tick_size) || !isMultipleOf(p.value, ins.tick_size))
      errors.price = `Price must be on the tick size ${ins.tick_size}`;
    else {
      const band = bandLimits(ins);
      if (band && (p.value.lessThan(band.low) || p.value.greaterThan(band.high)))
        errors.price = `Price must be within ${ins.price_band_pct}% of ${formatPrice(band.reference, ins.tick_size)} (${formatPrice(band.low, ins.tick_size)} – ${formatPrice(band.high, ins.tick_size)})`;
      else price = p.value;
    }
  }

  if (input.type === 'market') {
    if (input.postOnly) errors.form = 'Post-only applies to limit orders only';
    else if (input.timeInForce === 'gtc' || input.timeInForce === 'day')
      errors.form = 'A market order never rests: use IOC or FOK';
  } else if (input.postOnly && (input.timeInForce === 'ioc' || input.timeInForce === 'fok')) {
    errors.form = 'A post-only order must be able to rest: use GTC or DAY';
  }
  if (ins.status && ['halted', 'closed', 'suspended', 'paused'].includes(ins.status.toLowerCase()))
    errors.form = `${ins.symbol} is not trading (${ins.status})`;
  if (!ctx.tradingEnabled) errors.form = 'Trading is halted for this account (kill switch)';

  if (qty) {
    if (input.type === 'limit' && price) {
      estimate.notional = price.mul(qty).toString();
      estimate.price = price.toString();
    } else if (input.type === 'market') {
      const levels = input.side === 'buy' ? ctx.bookAsks : ctx.bookBids;
      const w = walkBook(levels, qty);
      if (w.average) {
        estimate.notional = w.notional.toString();
        estimate.price = w.average.toString();
      }
      if (w.filled.lessThan(qty)) {
        estimate.shortfall = qty.sub(w.filled).toString();
        if (w.filled.isZero()) errors.form ??= 'No liquidity on the other side of the book';
      }
    }
  }

  if (input.side === 'buy' && estimate.notional && ctx.buyingPower !== null && !errors.form) {
    const bp = dec(ctx.buyingPower);
    if (bp && new Decimal(estimate.notional).greaterThan(bp))
      errors.form = `Insufficient buying power: needs ${formatPrice(estimate.notional, '0.01')}, available ${formatPrice(bp, '0.01')}`;
  }

  const valid = !errors.quantity && !errors.price && !errors.form && qty !== null && (input.type === 'market' || price !== null);
  let order: OrderCreate | null = null;
  if (valid && qty) {
    order = {
      symbol: ins.symbol,
      side: input.side,
      type: input.type,
      time_in_force: input.timeInForce,
      quantity: qty.toFixed(decimalsOf(ins.lot_size)),
    };
    if (input.type === 'limit' && price) {
      order.price = price.toFixed(decimalsOf(ins.tick_size));
      if (input.postOnly) order.post_only = true;
    }
  }
  return { errors, estimate, valid, order };
}

/** The allowed limit price range around the reference price, or null when unknown. */
export function bandLimits(ins: Instrument): { low: Decimal; high: Decimal; reference: Decimal } | null {
  const ref = dec(ins.last_price) ?? dec(ins.reference_price);
  const pct = dec(ins.price_band_pct);
  if (!ref || !pct || pct.isZero()) return null;
  const delta = ref.mul(pct).div(100);
  return { low: ref.sub(delta), high: ref.add(delta), reference: ref };
}
