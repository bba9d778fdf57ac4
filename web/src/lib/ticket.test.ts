import { describe, expect, it } from 'vitest';
import type { Instrument } from '../api/types';
import { OrderBook } from './book';
import { bandLimits, evaluateTicket, type TicketContext, type TicketInput } from './ticket';

const BTC: Instrument = {
  symbol: 'BTC-USD',
  tick_size: '0.01',
  lot_size: '0.0001',
  min_quantity: '0.0001',
  max_quantity: '100',
  price_band_pct: '10',
  reference_price: '65000.00',
  last_price: null,
  status: 'trading',
};

function ctx(over: Partial<TicketContext> = {}): TicketContext {
  const b = new OrderBook();
  b.applySnapshot(1, [['64990.00', '0.5']], [['65010.00', '0.2'], ['65020.00', '1']]);
  const v = b.view();
  return { instrument: BTC, buyingPower: '100000', bookAsks: v.asks, bookBids: v.bids, tradingEnabled: true, ...over };
}

const limitBuy: TicketInput = { side: 'buy', type: 'limit', timeInForce: 'gtc', postOnly: false, quantity: '0.5', price: '65000.00' };

describe('evaluateTicket', () => {
  it('accepts a valid limit order and builds the request with tick and lot precision', () => {
    const r = evaluateTicket({ ...limitBuy, quantity: '0.5', price: '65000' }, ctx());
    expect(r.valid).toBe(true);
    expect(r.order).toEqual({ symbol: 'BTC-USD', side: 'buy', type: 'limit', time_in_force: 'gtc', quantity: '0.5000', price: '65000.00' });
    expect(r.estimate.notional).toBe('32500');
  });

  it('rejects quantities off the lot, below min and above max', () => {
    expect(evaluateTicket({ ...limitBuy, quantity: '0.00015' }, ctx()).errors.quantity).toMatch(/lot size 0.0001/);
    expect(evaluateTicket({ ...limitBuy, quantity: '101' }, ctx()).errors.quantity).toMatch(/Maximum quantity is 100.0000/);
    const aapl = { ...BTC, symbol: 'AAPL', lot_size: '1', min_quantity: '5', max_quantity: '100000', reference_price: '190.00' };
    const r = evaluateTicket({ ...limitBuy, quantity: '2', price: '190' }, ctx({ instrument: aapl }));
    expect(r.errors.quantity).toBe('Minimum quantity is 5');
    expect(r.valid).toBe(false);
    expect(r.order).toBeNull();
  });

  it('rejects prices off the tick, outside the band or missing', () => {
    expect(evaluateTicket({ ...limitBuy, price: '65000.005' }, ctx()).errors.price).toMatch(/tick size 0.01/);
    expect(evaluateTicket({ ...limitBuy, price: '80000' }, ctx()).errors.price).toMatch(/within 10%/);
    expect(evaluateTicket({ ...limitBuy, price: '' }, ctx()).errors.price).toBe('Enter a price');
    expect(evaluateTicket({ ...limitBuy, price: '1e5' }, ctx()).errors.price).toMatch(/plain positive number/);
  });

  it('uses the last trade price for the band when there is one', () => {
    expect(bandLimits({ ...BTC, last_price: '70000.00' })!.high.toString()).toBe('77000');
    expect(evaluateTicket({ ...limitBuy, price: '75000' }, ctx({ instrument: { ...BTC, last_price: '70000.00' } })).valid).toBe(true);
  });

  it('checks buying power for buys but not for sells', () => {
    const r = evaluateTicket({ ...limitBuy, quantity: '2' }, ctx({ buyingPower: '100000' }));
    expect(r.errors.form).toBe('Insufficient buying power: needs 130,000.00, available 100,000.00');
    expect(r.valid).toBe(false);
    expect(evaluateTicket({ ...limitBuy, side: 'sell', quantity: '2' }, ctx({ buyingPower: '100000' })).valid).toBe(true);
  });

  it('estimates a market buy by walking the asks', () => {
    const r = evaluateTicket({ side: 'buy', type: 'market', timeInForce: 'ioc', postOnly: false, quantity: '0.3', price: '' }, ctx());
    expect(r.valid).toBe(true);
    expect(r.estimate.notional).toBe('19504'); // 0.2 x 65010 + 0.1 x 65020
    expect(r.order).toEqual({ symbol: 'BTC-USD', side: 'buy', type: 'market', time_in_force: 'ioc', quantity: '0.3000' });
    expect(r.order).not.toHaveProperty('price');
  });

  it('flags a market order larger than the visible book and one with no liquidity', () => {
    const r = evaluateTicket({ side: 'sell', type: 'market', timeInForce: 'ioc', postOnly: false, quantity: '1', price: '' }, ctx());
    expect(r.estimate.shortfall).toBe('0.5');
    const empty = evaluateTicket({ side: 'sell', type: 'market', timeInForce: 'ioc', postOnly: false, quantity: '1', price: '' }, ctx({ bookBids: [] }));
    expect(empty.errors.form).toBe('No liquidity on the other side of the book');
    expect(empty.valid).toBe(false);
  });

  it('refuses contradictory flags', () => {
    expect(evaluateTicket({ ...limitBuy, type: 'market', timeInForce: 'gtc' }, ctx()).errors.form).toMatch(/never rests/);
    expect(evaluateTicket({ ...limitBuy, postOnly: true, timeInForce: 'ioc' }, ctx()).errors.form).toMatch(/post-only/i);
    const po = evaluateTicket({ ...limitBuy, postOnly: true }, ctx());
    expect(po.order?.post_only).toBe(true);
  });

  it('blocks everything while the kill switch is on', () => {
    expect(evaluateTicket(limitBuy, ctx({ tradingEnabled: false })).errors.form).toMatch(/halted/);
  });
});
