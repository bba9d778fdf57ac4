import { describe, expect, it } from 'vitest';
import { dec, decimalsOf, formatFixed, formatMoney, formatPrice, formatQty, isMultipleOf, parseInput, snapToStep, stepValue, Decimal } from './decimal';

describe('dec', () => {
  it('parses plain decimal strings exactly', () => {
    expect(dec('0.1')!.add(dec('0.2')!).toString()).toBe('0.3');
    expect(dec('65000.01')!.mul('0.0001').toString()).toBe('6.500001');
  });
  it('rejects garbage, exponents and non-finite values', () => {
    for (const bad of ['', 'abc', '1e5', 'NaN', 'Infinity', '1,000', '--1', '1.']) expect(dec(bad)).toBeNull();
    expect(dec(null)).toBeNull();
    expect(dec(undefined)).toBeNull();
  });
});

describe('formatting', () => {
  it('counts decimals of a step', () => {
    expect(decimalsOf('0.01')).toBe(2);
    expect(decimalsOf('0.0001')).toBe(4);
    expect(decimalsOf('1')).toBe(0);
    expect(decimalsOf('0.50')).toBe(1);
  });
  it('formats prices with the tick and quantities with the lot', () => {
    expect(formatPrice('190.5', '0.01')).toBe('190.50');
    expect(formatPrice('65000', '0.01')).toBe('65,000.00');
    expect(formatQty('0.0001', '0.0001')).toBe('0.0001');
    expect(formatQty('12', '1')).toBe('12');
    expect(formatQty('1234567.5', '0.0001')).toBe('1,234,567.5000');
  });
  it('rounds half to even and never shows negative zero', () => {
    expect(formatFixed('0.125', 2)).toBe('0.12');
    expect(formatFixed('0.135', 2)).toBe('0.14');
    expect(formatFixed('-0.001', 2)).toBe('0.00');
    expect(formatMoney('-1234.5')).toBe('-1,234.50');
  });
  it('signs P&L on request and shows a dash for missing values', () => {
    expect(formatMoney('12.3', { sign: true })).toBe('+12.30');
    expect(formatMoney('0', { sign: true })).toBe('0.00');
    expect(formatMoney(null)).toBe('—');
  });
});

describe('parseInput', () => {
  it('accepts plain positive decimals', () => {
    const r = parseInput('  12.50 ', 'price');
    expect(r.ok && r.value.toString()).toBe('12.5');
    const r2 = parseInput('.5', 'quantity');
    expect(r2.ok && r2.value.toString()).toBe('0.5');
  });
  it('rejects empty, zero, negative, exponent and non-numbers with a message', () => {
    expect(parseInput('', 'price')).toEqual({ ok: false, error: 'Enter a price' });
    expect(parseInput('0', 'quantity')).toEqual({ ok: false, error: 'Quantity must be greater than zero' });
    for (const bad of ['-1', '1e3', 'NaN', 'Infinity', '1,5', '0x10', '+1']) {
      const r = parseInput(bad, 'price');
      expect(r.ok).toBe(false);
    }
  });
});

describe('grid arithmetic', () => {
  it('checks multiples exactly, with no float error', () => {
    expect(isMultipleOf(new Decimal('0.3'), '0.1')).toBe(true);
    expect(isMultipleOf(new Decimal('190.07'), '0.01')).toBe(true);
    expect(isMultipleOf(new Decimal('190.075'), '0.01')).toBe(false);
    expect(isMultipleOf(new Decimal('0.00015'), '0.0001')).toBe(false);
  });
  it('snaps to the grid', () => {
    expect(snapToStep(new Decimal('190.076'), '0.01', 'down').toString()).toBe('190.07');
    expect(snapToStep(new Decimal('190.071'), '0.01', 'up').toString()).toBe('190.08');
    expect(snapToStep(new Decimal('190.075'), '0.01').toString()).toBe('190.08');
  });
  it('steps by ticks and lots from typed, off-grid or empty values', () => {
    expect(stepValue('190.00', '0.01', 1, '1')).toBe('190.01');
    expect(stepValue('190.00', '0.01', -1, '1')).toBe('189.99');
    expect(stepValue('190.005', '0.01', 1, '1')).toBe('190.01');
    expect(stepValue('190.005', '0.01', -1, '1')).toBe('190.00');
    expect(stepValue('', '0.01', 1, '65000.00')).toBe('65000.01');
    expect(stepValue('0.0001', '0.0001', -1, '0.0001')).toBe('0.0001');
    expect(stepValue('0.0009', '0.0001', 1, '0.0001')).toBe('0.0010');
  });
});
