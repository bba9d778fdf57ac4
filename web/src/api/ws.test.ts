import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WsClient } from './ws';

class FakeSocket {
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: unknown[] = [];
  onopen: (() => void) | null = null;
  onclose: (() => void) | null = null;
  onmessage: ((ev: { data: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 3;
    this.onclose?.();
  }
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  receive(msg: object) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
}

function client(): WsClient {
  return new WsClient('ws://test/api/v1/ws', (u) => new FakeSocket(u) as unknown as WebSocket);
}

describe('WsClient', () => {
  beforeEach(() => {
    FakeSocket.all = [];
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it('authenticates, subscribes, dispatches by channel and reports status', () => {
    const ws = client();
    const statuses: string[] = [];
    ws.onStatus((s) => statuses.push(s));
    const got: unknown[] = [];
    ws.subscribe('book:AAPL', { onMessage: (m) => got.push(m.seq) });
    ws.subscribe('orders', { onMessage: () => got.push('orders') });
    ws.setToken('tok');
    ws.start();
    const s = FakeSocket.all[0]!;
    s.open();
    expect(s.sent).toEqual([
      { op: 'auth', token: 'tok' },
      { op: 'subscribe', channels: ['book:AAPL', 'orders'] },
    ]);
    s.receive({ channel: 'book:AAPL', type: 'snapshot', seq: 5, data: {} });
    s.receive({ channel: 'trades:AAPL', data: {} });
    s.receive({ channel: 'orders', data: {} });
    expect(got).toEqual([5, 'orders']);
    expect(statuses).toEqual(['connecting', 'live']);
    ws.stop();
  });

  it('holds private channels back until there is a token', () => {
    const ws = client();
    ws.subscribe('fills', { onMessage: () => undefined });
    ws.subscribe('ticker:AAPL', { onMessage: () => undefined });
    ws.start();
    const s = FakeSocket.all[0]!;
    s.open();
    expect(s.sent).toEqual([{ op: 'subscribe', channels: ['ticker:AAPL'] }]);
    ws.setToken('tok');
    expect(s.sent.slice(1)).toEqual([{ op: 'auth', token: 'tok' }, { op: 'subscribe', channels: ['fills'] }]);
    ws.stop();
  });

  it('reconnects after a drop, resets subscribers and resubscribes everything', () => {
    const ws = client();
    let resets = 0;
    ws.subscribe('book:AAPL', { onMessage: () => undefined, onReset: () => resets++ });
    ws.start();
    FakeSocket.all[0]!.open();
    expect(resets).toBe(1);
    FakeSocket.all[0]!.close();
    expect(ws.status).toBe('reconnecting');
    vi.advanceTimersByTime(10_000);
    const second = FakeSocket.all[1]!;
    expect(second).toBeDefined();
    second.open();
    expect(ws.status).toBe('live');
    expect(resets).toBe(2);
    expect(second.sent).toEqual([{ op: 'subscribe', channels: ['book:AAPL'] }]);
    ws.stop();
  });

  it('resubscribes one channel on request and unsubscribes when the last handler leaves', () => {
    const ws = client();
    ws.start();
    const s = FakeSocket.all[0]!;
    s.open();
    let resets = 0;
    const off = ws.subscribe('book:MSFT', { onMessage: () => undefined, onReset: () => resets++ });
    ws.resubscribe('book:MSFT');
    expect(resets).toBe(1);
    off();
    expect(s.sent).toEqual([
      { op: 'subscribe', channels: ['book:MSFT'] },
      { op: 'unsubscribe', channels: ['book:MSFT'] },
      { op: 'subscribe', channels: ['book:MSFT'] },
      { op: 'unsubscribe', channels: ['book:MSFT'] },
    ]);
    ws.stop();
  });

  it('closes a silent connection so it reconnects', () => {
    const ws = client();
    ws.start();
    FakeSocket.all[0]!.open();
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.all.length).toBeGreaterThan(1);
    ws.stop();
  });
});
