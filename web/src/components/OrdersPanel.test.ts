import { describe, expect, it } from 'vitest';
import type { Instrument, Order } from '../api/types';
import { amendBody } from './OrdersPanel';

const ins: Instrument = {
  symbol: 'AAPL',
  tick_size: '0.01',
  lot_size: '1',
  min_quantity: '1',
  max_quantity: '100000',
  price_band_pct: '10',
  reference_price: '190.00',
  last_price: null,
  status: 'trading',
};
const order = { id: '1', type: 'limit', price: '190.00', quantity: '10' } as Order;

describe('amendBody', () => {
  it('sends only what changed, in canonical form', () => {
    expect(amendBody(ins, order, '190.5', '10')).toEqual({ body: { price: '190.50' } });
    expect(amendBody(ins, order, '190.00', '7')).toEqual({ body: { quantity: '7' } });
  });
  it('rejects off-grid values and no-op amends', () => {
    expect(amendBody(ins, order, '190.001', '10')).toEqual({ error: 'Price must be on the tick size 0.01' });
    expect(amendBody(ins, order, '190', '1.5')).toEqual({ error: 'Quantity must be a multiple of the lot size 1' });
    expect(amendBody(ins, order, '190', '10')).toEqual({ error: 'Nothing to change' });
  });
});
