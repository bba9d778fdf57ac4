import { describe, expect, it } from 'vitest';
import { flattenLimits } from './Risk';

describe('flattenLimits', () => {
  it('reads effective limits with their defaults and skips non-limits', () => {
    const rows = flattenLimits({
      effective: { user_id: '1', max_order_quantity: null, max_open_orders: 50, short_limit: '100000', trading_enabled: true },
      account: null,
      defaults: { user_id: null, max_order_quantity: null, max_open_orders: 500, short_limit: '100000', global_halt: false },
    });
    expect(rows).toEqual([
      { name: 'max_order_quantity', value: null, fallback: null },
      { name: 'max_open_orders', value: 50, fallback: 500 },
      { name: 'short_limit', value: '100000', fallback: '100000' },
    ]);
  });
  it('reads a flat document as the effective limits', () => {
    expect(flattenLimits({ max_position: '10' })).toEqual([{ name: 'max_position', value: '10', fallback: undefined }]);
  });
});
