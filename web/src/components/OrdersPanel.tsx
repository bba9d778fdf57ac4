import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { ApiError } from '../api/client';
import type { Instrument, Order } from '../api/types';
import { humanReason, keys, useFills, useInstrumentMap, useOrders } from '../hooks';
import { decimalsOf, formatMoney, formatPrice, formatQty, isMultipleOf, parseInput } from '../lib/decimal';
import { useSession } from '../session';
import { useToasts } from '../toasts';

type Tab = 'open' | 'history' | 'fills';

function when(iso: string | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleTimeString(undefined, { hour12: false });
}

function px(ins: Instrument | undefined, v: string | null | undefined): string {
  return ins ? formatPrice(v ?? null, ins.tick_size) : v ?? '—';
}

function qty(ins: Instrument | undefined, v: string | null | undefined): string {
  return ins ? formatQty(v ?? null, ins.lot_size) : v ?? '—';
}

/** Checks an amend's inputs against the instrument: returns an error text or the body to send. */
export function amendBody(
  ins: Instrument,
  order: Order,
  priceRaw: string,
  qtyRaw: string,
): { error: string } | { body: { price?: string; quantity?: string } } {
  const body: { price?: string; quantity?: string } = {};
  if (order.type === 'limit' && priceRaw.trim() !== '') {
    const p = parseInput(priceRaw, 'price');
    if (!p.ok) return { error: p.error };
    if (!isMultipleOf(p.value, ins.tick_size)) return { error: `Price must be on the tick size ${ins.tick_size}` };
    const s = p.value.toFixed(decimalsOf(ins.tick_size));
    if (order.price === null || !p.value.eq(order.price)) body.price = s;
  }
  if (qtyRaw.trim() !== '') {
    const q = parseInput(qtyRaw, 'quantity');
    if (!q.ok) return { error: q.error };
    if (!isMultipleOf(q.value, ins.lot_size)) return { error: `Quantity must be a multiple of the lot size ${ins.lot_size}` };
    if (!q.value.eq(order.quantity)) body.quantity = q.value.toFixed(decimalsOf(ins.lot_size));
  }
  if (body.price === undefined && body.quantity === undefined) return { error: 'Nothing to change' };
  return { body };
}

function OpenOrderRow({ order, ins }: { order: Order; ins: Instrument | undefined }) {
  const { api } = useSession();
  const qc = useQueryClient();
  const toasts = useToasts();
  const [editing, setEditing] = useState(false);
  const [price, setPrice] = useState('');
  const [quantity, setQuantity] = useState('');
  const [error, setError] = useState<string | null>(null);

  const refresh = () => {
    void qc.invalidateQueries({ queryKey: ['orders'] });
    void qc.invalidateQueries({ queryKey: keys.account });
  };
  const cancel = useMutation({
    mutationFn: () => api.cancelOrder(order.id),
    onSuccess: refresh,
    onError: (e) => toasts.push('error', 'Cancel failed', e instanceof ApiError ? e.message : String(e)),
  });
  const amend = useMutation({
    mutationFn: (body: { price?: string; quantity?: string }) => api.amendOrder(order.id, body),
    onSuccess: () => {
      setEditing(false);
      setError(null);
      refresh();
    },
    onError: (e) => setError(e instanceof ApiError ? `${e.code}: ${e.message}` : String(e)),
  });

  const startEdit = () => {
    setPrice(order.price ? px(ins, order.price).replace(/,/g, '') : '');
    setQuantity(qty(ins, order.quantity).replace(/,/g, ''));
    setError(null);
    setEditing(true);
  };
  const submit = (ev: FormEvent) => {
    ev.preventDefault();
    if (!ins) return;
    const r = amendBody(ins, order, price, quantity);
    if ('error' in r) setError(r.error);
    else amend.mutate(r.body);
  };

  return (
    <tr data-testid="open-order" data-order-id={order.id}>
      <td>{when(order.created_at)}</td>
      <td>{order.symbol}</td>
      <td className={order.side === 'buy' ? 'up' : 'down'}>{order.side.toUpperCase()}</td>
      <td>{order.type}</td>
      {editing ? (
        <td colSpan={2}>
          <form className="amend-form" onSubmit={submit} onKeyDown={(e) => e.key === 'Escape' && setEditing(false)}>
            <input aria-label="New price" name="amend-price" value={price} disabled={order.type !== 'limit'} onChange={(e) => setPrice(e.target.value)} />
            <input aria-label="New quantity" name="amend-quantity" value={quantity} onChange={(e) => setQuantity(e.target.value)} />
            <button type="submit" className="small-btn primary" disabled={amend.isPending}>
              Save
            </button>
            <button type="button" className="small-btn" onClick={() => setEditing(false)}>
              Esc
            </button>
            {error && (
              <em className="field-error" role="alert">
                {error}
              </em>
            )}
          </form>
        </td>
      ) : (
        <>
          <td className="num">{px(ins, order.price)}</td>
          <td className="num">{qty(ins, order.quantity)}</td>
        </>
      )}
      <td className="num">{qty(ins, order.filled_quantity)}</td>
      <td>{order.time_in_force.toUpperCase()}</td>
      <td>{order.status.replace('_', ' ')}</td>
      <td className="actions">
        <div className="actions-inner">
          {!editing && (
            <button type="button" className="small-btn" onClick={startEdit} aria-label={`Amend order ${order.id}`}>
              Amend
            </button>
          )}
          <button type="button" className="small-btn danger" disabled={cancel.isPending} onClick={() => cancel.mutate()} aria-label={`Cancel order ${order.id}`}>
            Cancel
          </button>
        </div>
      </td>
    </tr>
  );
}

export function OrdersPanel({ symbol }: { symbol: string | null }) {
  const [tab, setTab] = useState<Tab>('open');
  const [onlySymbol, setOnlySymbol] = useState(false);
  const open = useOrders('open');
  const closed = useOrders('closed');
  const fills = useFills();
  const instruments = useInstrumentMap();
  const { api } = useSession();
  const qc = useQueryClient();
  const toasts = useToasts();
  const cancelAll = useMutation({
    mutationFn: () => api.cancelAll(onlySymbol && symbol ? symbol : undefined),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ['orders'] });
      void qc.invalidateQueries({ queryKey: keys.account });
    },
    onError: (e) => toasts.push('error', 'Cancel all failed', e instanceof ApiError ? e.message : String(e)),
  });

  const filter = <T extends { symbol?: string }>(rows: T[] | undefined): T[] =>
    (rows ?? []).filter((r) => !onlySymbol || !symbol || r.symbol === symbol);
  const openRows = filter(open.data);
  const closedRows = filter(closed.data);
  const fillRows = filter(fills.data);

  return (
    <section className="panel orders-panel" aria-label="Orders">
      <header className="panel-header tabs-header">
        <div className="tabs" role="tablist">
          <button type="button" role="tab" aria-selected={tab === 'open'} className={tab === 'open' ? 'active' : ''} onClick={() => setTab('open')}>
            Open orders <span className="count">{openRows.length}</span>
          </button>
          <button type="button" role="tab" aria-selected={tab === 'history'} className={tab === 'history' ? 'active' : ''} onClick={() => setTab('history')}>
            Order history
          </button>
          <button type="button" role="tab" aria-selected={tab === 'fills'} className={tab === 'fills' ? 'active' : ''} onClick={() => setTab('fills')}>
            Fills
          </button>
        </div>
        {symbol ? (
          <label className="check small">
            <input type="checkbox" checked={onlySymbol} onChange={(e) => setOnlySymbol(e.target.checked)} />
            <span>{symbol} only</span>
          </label>
        ) : (
          <span className="spacer" />
        )}
        {tab === 'open' && (
          <button type="button" className="small-btn danger" disabled={openRows.length === 0 || cancelAll.isPending} onClick={() => cancelAll.mutate()}>
            Cancel all
          </button>
        )}
      </header>
      <div className="table-wrap">
        {tab === 'open' && (
          <table className="grid" data-testid="open-orders">
            <thead>
              <tr>
                <th>Time</th>
                <th>Symbol</th>
                <th>Side</th>
                <th>Type</th>
                <th className="num">Price</th>
                <th className="num">Qty</th>
                <th className="num">Filled</th>
                <th>TIF</th>
                <th>Status</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {openRows.map((o) => (
                <OpenOrderRow key={o.id} order={o} ins={instruments.get(o.symbol)} />
              ))}
              {openRows.length === 0 && (
                <tr>
                  <td colSpan={10} className="empty">
                    No open orders
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        )}
        {tab === 'history' && (
          <table className="grid" data-testid="order-history">
            <thead>
              <tr>
                <th>Time</th>
                <th>Symbol</th>
                <th>Side</th>
                <th>Type</th>
                <th className="num">Price</th>
                <th className="num">Qty</th>
                <th className="num">Filled</th>
                <th className="num">Avg price</th>
                <th>Status</th>
                <th>Reason</th>
              </tr>
            </thead>
            <tbody>
              {closedRows.map((o) => {
                const ins = instruments.get(o.symbol);
                return (
                  <tr key={o.id}>
                    <td>{when(o.updated_at)}</td>
                    <td>{o.symbol}</td>
                    <td className={o.side === 'buy' ? 'up' : 'down'}>{o.side.toUpperCase()}</td>
                    <td>{o.type}</td>
                    <td className="num">{px(ins, o.price)}</td>
                    <td className="num">{qty(ins, o.quantity)}</td>
                    <td className="num">{qty(ins, o.filled_quantity)}</td>
                    <td className="num">{px(ins, o.average_price)}</td>
                    <td>{o.status.replace('_', ' ')}</td>
                    <td className="muted">{humanReason(o.reason) ?? ''}</td>
                  </tr>
                );
              })}
              {closedRows.length === 0 && (
                <tr>
                  <td colSpan={10} className="empty">
                    No closed orders
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        )}
        {tab === 'fills' && (
          <table className="grid" data-testid="fills">
            <thead>
              <tr>
                <th>Time</th>
                <th>Symbol</th>
                <th>Side</th>
                <th className="num">Price</th>
                <th className="num">Qty</th>
                <th className="num">Fee</th>
                <th>Liquidity</th>
              </tr>
            </thead>
            <tbody>
              {fillRows.map((f) => {
                const ins = f.symbol ? instruments.get(f.symbol) : undefined;
                return (
                  <tr key={`${f.trade_id}-${f.order_id ?? ''}`}>
                    <td>{when(f.time)}</td>
                    <td>{f.symbol ?? '—'}</td>
                    <td className={f.side === 'buy' ? 'up' : 'down'}>{f.side?.toUpperCase() ?? '—'}</td>
                    <td className="num">{px(ins, f.price)}</td>
                    <td className="num">{qty(ins, f.quantity)}</td>
                    <td className="num">{formatMoney(f.fee)}</td>
                    <td>{f.liquidity}</td>
                  </tr>
                );
              })}
              {fillRows.length === 0 && (
                <tr>
                  <td colSpan={7} className="empty">
                    No fills yet
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        )}
      </div>
    </section>
  );
}
