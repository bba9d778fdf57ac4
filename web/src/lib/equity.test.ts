import { describe, expect, it } from 'vitest';
import { appendEquity } from './equity';

describe('appendEquity', () => {
  it('appends new seconds and replaces a sample within the same second', () => {
    let s = appendEquity([], { t: 10, equity: '100.00' });
    s = appendEquity(s, { t: 10, equity: '101.00' });
    s = appendEquity(s, { t: 11, equity: '99.50' });
    expect(s).toEqual([
      { t: 10, equity: '101.00' },
      { t: 11, equity: '99.50' },
    ]);
  });
});
