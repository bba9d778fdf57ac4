import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { ApiError } from '../api/client';
import type { Account, Instrument, Order, OrderType, Side, TimeInForce } from '../api/types';
import { humanReason, keys } from '../hooks';
import type { BookView } from '../lib/book';
import { formatMoney, formatPrice, formatQty, stepValue } from '../lib/decimal';
import { evaluateTicket } from '../lib/ticket';
import { useSession } from '../session';
import { useToasts } from '../toasts';

export interface PickedPrice {
  price: string;
  side: 'bid' | 'ask';
  nonce: number;
}

const TIFS: { value: TimeInForce; label: string; title: string }[] = [
  { value: 'gtc', label: 'GTC', title: 'Good till canceled' },
  { value: 'day', label: 'DAY', title: 'Expires at the end of the trading day' },
  { value: 'ioc', label: 'IOC', title: 'Immediate or cancel: fill what you can now, cancel the rest' },
  { value: 'fok', label: 'FOK', title: 'Fill or kill: fill completely now or not at all' },
];

function newClientOrderId(): string {
  const rnd = typeof crypto !== 'undefined' && 'randomUUID' in crypto ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
  return `web-${rnd}`;
}

export function OrderTicket({
  ins,
  book,
  account,
  picked,
}: {
  ins: Instrument;
  book: BookView | null;
  account: Account | undefined;
  picked: PickedPrice | null;
}) {
  const { api } = useSession();
  const qc = useQueryClient();
  const toasts = useToasts();
  const [side, setSide] = useState<Side>('buy');
  const [type, setType] = useState<OrderType>('limit');
  const [tif, setTif] = useState<TimeInForce>('gtc');
  const [postOnly, setPostOnly] = useState(false);
  const [quantity, setQuantity] = useState('');
  const [price, setPrice] = useState('');
  const [touched, setTouched] = useState(false);
  const [apiError, setApiError] = useState<ApiError | null>(null);
  const [lastResult, setLastResult] = useState<Order | null>(null);

  // A new symbol starts with a clean ticket.
  useEffect(() => {
    setQuantity('');
    setPrice('');
    setTouched(false);
    setApiError(null);
    setLastResult(null);
  }, [ins.symbol]);

  // A click on the book fills the price and takes the other side (click an ask to buy).
  useEffect(() => {
    if (!picked) return;
    setPrice(formatPrice(picked.price, ins.tick_size).replace(/,/g, ''));
    setType('limit');
    setSide(picked.side === 'ask' ? 'buy' : 'sell');
    setApiError(null);
  }, [picked, ins.tick_size]);

  const result = useMemo(
    () =>
      evaluateTicket(
        { side, type, timeInForce: tif, postOnly, quantity, price },
        {
          instrument: ins,
          buyingPower: account?.buying_power ?? null,
          bookAsks: book?.asks ?? [],
          bookBids: book?.bids ?? [],
          tradingEnabled: account?.trading_enabled ?? true,
        },
      ),
    [side, type, tif, postOnly, quantity, price, ins, account, book],
  );

  const mutation = useMutation({
    mutationFn: () => {
      if (!result.order) throw new ApiError(0, 'invalid', 'Fix the ticket first');
      return api.placeOrder({ ...result.order, client_order_id: newClientOrderId() });
    },
    onSuccess: (order) => {
      setApiError(null);
      setLastResult(order);
      if (order.status === 'rejected' || (order.status === 'canceled' && order.reason && order.reason !== 'user')) {
        toasts.push('reject', `${order.side.toUpperCase()} ${order.symbol} ${order.status}`, humanReason(order.reason), `rej:${order.id}:${order.status}`);
      } else if (order.status === 'expired') {
        toasts.push('reject', `${order.side.toUpperCase()} ${order.symbol} expired`, humanReason(order.reason), `rej:${order.id}:expired`);
      }
      void qc.invalidateQueries({ queryKey: ['orders'] });
      void qc.invalidateQueries({ queryKey: keys.account });
      void qc.invalidateQueries({ queryKey: keys.fills });
      void qc.invalidateQueries({ queryKey: keys.portfolio });
    },
    onError: (err) => {
      const e = err instanceof ApiError ? err : new ApiError(0, 'error', String(err));
      setApiError(e);
      toasts.push('reject', 'Order rejected', e.message);
    },
  });

  const showErrors = touched;
  const onSubmit = (ev: FormEvent) => {
    ev.preventDefault();
    setTouched(true);
    if (!result.valid || mutation.isPending) return;
    mutation.mutate();
  };

  const onType = (t: OrderType) => {
    setType(t);
    if (t === 'market') {
      setPostOnly(false);
      if (tif === 'gtc' || tif === 'day') setTif('ioc');
    } else if (tif === 'ioc' || tif === 'fok') {
      setTif('gtc');
    }
  };

  const refPrice = side === 'buy' ? book?.bestAsk ?? book?.bestBid : book?.bestBid ?? book?.bestAsk;
  const priceFallback = refPrice ?? ins.last_price ?? ins.reference_price;
  const est = result.estimate;

  return (
    <section className="panel ticket-panel" aria-label="Order ticket">
      <header className="panel-header">
        <h2>Order ticket</h2>
        <span className="muted small">
          tick {ins.tick_size} · lot {ins.lot_size}
        </span>
      </header>
      <form className="ticket" onSubmit={onSubmit} noValidate>
        <div className="side-toggle" role="group" aria-label="Side">
          <button type="button" className={`buy${side === 'buy' ? ' active' : ''}`} aria-pressed={side === 'buy'} onClick={() => setSide('buy')}>
            Buy
          </button>
          <button type="button" className={`sell${side === 'sell' ? ' active' : ''}`} aria-pressed={side === 'sell'} onClick={() => setSide('sell')}>
            Sell
          </button>
        </div>
        <div className="seg full" role="group" aria-label="Order type">
          {(['limit', 'market'] as const).map((t) => (
            <button key={t} type="button" className={type === t ? 'active' : ''} aria-pressed={type === t} onClick={() => onType(t)}>
              {t === 'limit' ? 'Limit' : 'Market'}
            </button>
          ))}
        </div>

        <label className="field">
          <span>Price</span>
          <div className="stepper">
            <button type="button" aria-label="Price down one tick" disabled={type === 'market'} onClick={() => setPrice(stepValue(price, ins.tick_size, -1, priceFallback))}>
              −
            </button>
            <input
              name="price"
              inputMode="decimal"
              autoComplete="off"
              placeholder={type === 'market' ? 'Market' : formatPrice(priceFallback, ins.tick_size).replace(/,/g, '')}
              value={type === 'market' ? '' : price}
              disabled={type === 'market'}
              aria-invalid={showErrors && !!result.errors.price}
              onChange={(e) => {
                setPrice(e.target.value);
                setApiError(null);
              }}
              onKeyDown={(e) => {
                if (e.key === 'ArrowUp') {
                  e.preventDefault();
                  setPrice(stepValue(price, ins.tick_size, 1, priceFallback));
                } else if (e.key === 'ArrowDown') {
                  e.preventDefault();
                  setPrice(stepValue(price, ins.tick_size, -1, priceFallback));
                }
              }}
            />
            <button type="button" aria-label="Price up one tick" disabled={type === 'market'} onClick={() => setPrice(stepValue(price, ins.tick_size, 1, priceFallback))}>
              +
            </button>
          </div>
          {showErrors && result.errors.price && type === 'limit' && <em className="field-error">{result.errors.price}</em>}
        </label>

        <label className="field">
          <span>Quantity</span>
          <div className="stepper">
            <button type="button" aria-label="Quantity down one lot" onClick={() => setQuantity(stepValue(quantity, ins.lot_size, -1, ins.min_quantity))}>
              −
            </button>
            <input
              name="quantity"
              inputMode="decimal"
              autoComplete="off"
              placeholder={formatQty(ins.min_quantity, ins.lot_size)}
              value={quantity}
              aria-invalid={showErrors && !!result.errors.quantity}
              onChange={(e) => {
                setQuantity(e.target.value);
                setApiError(null);
              }}
              onKeyDown={(e) => {
                if (e.key === 'ArrowUp') {
                  e.preventDefault();
                  setQuantity(stepValue(quantity, ins.lot_size, 1, ins.min_quantity));
                } else if (e.key === 'ArrowDown') {
                  e.preventDefault();
                  setQuantity(stepValue(quantity, ins.lot_size, -1, ins.min_quantity));
                }
              }}
            />
            <button type="button" aria-label="Quantity up one lot" onClick={() => setQuantity(stepValue(quantity, ins.lot_size, 1, ins.min_quantity))}>
              +
            </button>
          </div>
          {showErrors && result.errors.quantity && <em className="field-error">{result.errors.quantity}</em>}
        </label>

        <div className="ticket-row">
          <label className="field inline">
            <span>Time in force</span>
            <select name="tif" value={tif} onChange={(e) => setTif(e.target.value as TimeInForce)}>
              {TIFS.map((t) => (
                <option key={t.value} value={t.value} title={t.title} disabled={type === 'market' && (t.value === 'gtc' || t.value === 'day')}>
                  {t.label}
                </option>
              ))}
            </select>
          </label>
          <label className="check">
            <input type="checkbox" name="post_only" checked={postOnly} disabled={type === 'market'} onChange={(e) => setPostOnly(e.target.checked)} />
            <span>Post-only</span>
          </label>
        </div>

        <dl className="ticket-summary">
          <div>
            <dt>{type === 'market' ? 'Est. avg price' : 'Price'}</dt>
            <dd className="num">{est.price ? formatPrice(est.price, ins.tick_size) : '—'}</dd>
          </div>
          <div>
            <dt title="Price times quantity, before fees">Est. {side === 'buy' ? 'cost' : 'proceeds'} <span className="small">(excl. fees)</span></dt>
            <dd className="num" data-testid="estimated-cost">
              {est.notional ? formatMoney(est.notional) : '—'}
            </dd>
          </div>
          <div>
            <dt>Buying power</dt>
            <dd className="num">{formatMoney(account?.buying_power ?? null)}</dd>
          </div>
          {est.shortfall && (
            <div className="warn">
              <dt>Not fillable now</dt>
              <dd className="num">{formatQty(est.shortfall, ins.lot_size)}</dd>
            </div>
          )}
        </dl>

        {showErrors && result.errors.form && (
          <div className="form-error" role="alert">
            {result.errors.form}
          </div>
        )}
        {apiError && (
          <div className="api-error" role="alert" data-testid="order-error">
            <strong>{apiError.code}</strong>: {apiError.message}
          </div>
        )}
        {lastResult && !apiError && (
          <div className={`last-result status-${lastResult.status}`} data-testid="order-result" data-order-id={lastResult.id}>
            {lastResult.side.toUpperCase()} {formatQty(lastResult.quantity, ins.lot_size)} {lastResult.symbol}: {lastResult.status.replace('_', ' ')}
            {lastResult.reason ? ` (${humanReason(lastResult.reason)})` : ''}
          </div>
        )}

        <button type="submit" className={`submit ${side}`} disabled={mutation.isPending} data-testid="submit-order">
          {mutation.isPending ? 'Sending…' : `${side === 'buy' ? 'Buy' : 'Sell'} ${ins.symbol}`}
        </button>
      </form>
    </section>
  );
}
