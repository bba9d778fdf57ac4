import { describe, expect, it } from 'vitest';
import { parseErrorBody } from './client';

describe('parseErrorBody', () => {
  it('reads the contract error shape', () => {
    const e = parseErrorBody(400, { error: { code: 'price_not_on_tick', message: 'price 1.001 is not a multiple of 0.01', field: 'price' } });
    expect([e.status, e.code, e.message, e.field]).toEqual([400, 'price_not_on_tick', 'price 1.001 is not a multiple of 0.01', 'price']);
  });
  it('reads FastAPI validation details as a fallback', () => {
    const e = parseErrorBody(422, { detail: [{ loc: ['body', 'quantity'], msg: 'field required', type: 'missing' }] });
    expect(e.code).toBe('validation_error');
    expect(e.message).toBe('quantity: field required');
    expect(e.field).toBe('quantity');
    expect(parseErrorBody(404, { detail: 'Not Found' }).message).toBe('Not Found');
  });
  it('falls back to the HTTP status for an unknown body', () => {
    const e = parseErrorBody(502, null, 'Bad Gateway');
    expect([e.code, e.message]).toEqual(['http_502', 'Bad Gateway']);
  });
});
