import { describe, expect, it } from 'vitest';
import { OrderBook, parseChanges, walkBook } from './book';
import { Decimal } from './decimal';

function book(): OrderBook {
  const b = new OrderBook();
  b.applySnapshot(10, [['100.00', '5'], ['99.50', '3']], [['100.50', '2'], ['101.00', '4']]);
  return b;
}

describe('OrderBook', () => {
  it('builds best-first sides with cumulative sizes and the spread', () => {
    const v = book().view();
    expect(v.bids.map((l) => [l.price, l.quantity, l.cumulative])).toEqual([
      ['100', '5', '5'],
      ['99.5', '3', '8'],
    ]);
    expect(v.asks.map((l) => [l.price, l.quantity, l.cumulative])).toEqual([
      ['100.5', '2', '2'],
      ['101', '4', '6'],
    ]);
    expect(v.spread).toBe('0.5');
    expect(v.seq).toBe(10);
  });

  it('applies contiguous deltas: set, add and remove levels', () => {
    const b = book();
    expect(b.applyDelta(11, { bids: [['100.00', '7']], asks: [] })).toBe('ok');
    expect(b.applyDelta(12, { bids: [['100.25', '1']], asks: [['100.50', '0']] })).toBe('ok');
    const v = b.view();
    expect(v.bids.map((l) => [l.price, l.quantity])).toEqual([
      ['100.25', '1'],
      ['100', '7'],
      ['99.5', '3'],
    ]);
    expect(v.asks.map((l) => l.price)).toEqual(['101']);
    expect(v.bestBid).toBe('100.25');
    expect(v.bestAsk).toBe('101');
    expect(v.seq).toBe(12);
  });

  it('treats price strings with different trailing zeros as the same level', () => {
    const b = book();
    b.applyDelta(11, { bids: [['100', '0']] });
    expect(b.view().bids.map((l) => l.price)).toEqual(['99.5']);
  });

  it('detects a sequence gap, stops being ready and ignores further deltas', () => {
    const b = book();
    expect(b.applyDelta(12, { bids: [['100.00', '1']] })).toBe('gap');
    expect(b.isReady).toBe(false);
    expect(b.applyDelta(13, { bids: [['100.00', '1']] })).toBe('not_ready');
    b.applySnapshot(20, [['98', '1']], []);
    expect(b.isReady).toBe(true);
    expect(b.applyDelta(21, { asks: [['99', '2']] })).toBe('ok');
    expect(b.view().spread).toBe('1');
  });

  it('ignores deltas already contained in the snapshot', () => {
    const b = book();
    expect(b.applyDelta(10, { bids: [['100.00', '99']] })).toBe('stale');
    expect(b.applyDelta(9, { bids: [['100.00', '99']] })).toBe('stale');
    expect(b.view().bids[0]!.quantity).toBe('5');
  });

  it('refuses deltas before any snapshot', () => {
    expect(new OrderBook().applyDelta(1, { bids: [['1', '1']] })).toBe('not_ready');
  });

  it('reset forgets the book until the next snapshot', () => {
    const b = book();
    b.reset();
    expect(b.isReady).toBe(false);
    expect(b.view().bids).toEqual([]);
  });

  it('limits depth per side', () => {
    const b = new OrderBook();
    b.applySnapshot(
      1,
      Array.from({ length: 30 }, (_, i) => [String(100 - i), '1'] as [string, string]),
      [],
    );
    const v = b.view(5);
    expect(v.bids).toHaveLength(5);
    expect(v.bids[4]!.cumulative).toBe('5');
  });
});

describe('the backend delta shape', () => {
  it('applies one level per update message with its extra fields', () => {
    const b = book();
    expect(b.applyDelta(11, { side: 'sell', price: '100.50', quantity: '0', order_count: 0, sequence: 912 })).toBe('ok');
    expect(b.applyDelta(12, { side: 'buy', price: '100.10', quantity: '4', order_count: 2, sequence: 913 })).toBe('ok');
    const v = b.view();
    expect(v.bestAsk).toBe('101');
    expect(v.bestBid).toBe('100.1');
  });
});

describe('parseChanges', () => {
  it('accepts object and tuple level changes', () => {
    expect(parseChanges({ changes: [{ side: 'buy', price: '1.00', quantity: '2' }, ['sell', '2.00', '0']] })).toEqual([
      { side: 'buy', price: '1.00', quantity: '2' },
      { side: 'sell', price: '2.00', quantity: '0' },
    ]);
    expect(parseChanges({ side: 'bid', price: '3', quantity: '1' })).toEqual([{ side: 'buy', price: '3', quantity: '1' }]);
    expect(parseChanges(null)).toEqual([]);
  });
});

describe('walkBook', () => {
  it('walks levels best first for a market order', () => {
    const v = book().view();
    const w = walkBook(v.asks, new Decimal('3'));
    expect(w.filled.toString()).toBe('3');
    expect(w.notional.toString()).toBe('302'); // 2 x 100.5 + 1 x 101
    expect(w.average!.toString()).toBe('100.66666666666666666666666666666666666666666666667');
    expect(w.worst).toBe('101');
  });
  it('reports partial liquidity', () => {
    const w = walkBook(book().view().asks, new Decimal('10'));
    expect(w.filled.toString()).toBe('6');
  });
});
