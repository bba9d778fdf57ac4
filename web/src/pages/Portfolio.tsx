import { ColorType, createChart, LineSeries, type IChartApi, type ISeriesApi, type UTCTimestamp } from 'lightweight-charts';
import { useEffect, useMemo, useRef } from 'react';
import type { Position } from '../api/types';
import { OrdersPanel } from '../components/OrdersPanel';
import { useAccount, useInstrumentMap, usePortfolio } from '../hooks';
import { dec, formatMoney, formatPrice, formatQty, signOf, ZERO } from '../lib/decimal';
import type { EquitySample } from '../lib/equity';

const PALETTE = ['#3b82f6', '#16c784', '#f0b90b', '#a855f7', '#ef4444', '#14b8a6', '#f97316', '#64748b'];

function Pnl({ value, testId }: { value: string | null | undefined; testId?: string }) {
  const s = signOf(value ?? null);
  return (
    <span className={`num ${s > 0 ? 'up' : s < 0 ? 'down' : ''}`} data-testid={testId}>
      {formatMoney(value ?? null, { sign: true })}
    </span>
  );
}

/** Share of gross position value per symbol, and how much of the equity sits in cash. */
function Allocation({ positions, cash, equity }: { positions: Position[]; cash: string | null; equity: string | null }) {
  const parts = useMemo(() => {
    const rows = positions
      .map((p) => ({ label: p.symbol, value: (dec(p.market_value) ?? ZERO).abs(), short: signOf(p.quantity) < 0 }))
      .filter((r) => !r.value.isZero());
    const total = rows.reduce((acc, r) => acc.add(r.value), ZERO);
    return rows
      .sort((a, b) => b.value.comparedTo(a.value))
      .map((r, i) => ({
        ...r,
        pct: total.isZero() ? ZERO : r.value.div(total).mul(100),
        color: PALETTE[i % PALETTE.length]!,
      }));
  }, [positions]);
  const c = dec(cash);
  const e = dec(equity);
  const cashPct = c && e && !e.isZero() ? c.div(e).mul(100) : null;
  return (
    <section className="panel" aria-label="Allocation">
      <header className="panel-header">
        <h2>Allocation</h2>
        <span className="muted small">share of gross position value</span>
      </header>
      <div className="alloc-bar" role="img" aria-label="Allocation bar">
        {parts.map((p) => (
          <span key={p.label} style={{ width: `${p.pct.toDecimalPlaces(2).toString()}%`, background: p.color }} title={`${p.label} ${p.pct.toFixed(1)}%`} />
        ))}
      </div>
      <ul className="alloc-legend">
        {parts.map((p) => (
          <li key={p.label}>
            <span className="swatch" style={{ background: p.color }} />
            <span>
              {p.label}
              {p.short ? ' (short)' : ''}
            </span>
            <span className="num">{formatMoney(p.value)}</span>
            <span className="num muted">{p.pct.toFixed(1)}%</span>
          </li>
        ))}
        {parts.length === 0 && <li className="muted">No open positions</li>}
        <li className="alloc-cash">
          <span className="swatch" style={{ background: '#475569' }} />
          <span>Cash</span>
          <span className="num">{formatMoney(cash)}</span>
          <span className="num muted">{cashPct ? `${cashPct.toFixed(1)}%` : '—'}</span>
        </li>
      </ul>
      <p className="muted small alloc-note">Cash is shown as a share of equity.</p>
    </section>
  );
}

function EquityCurve({ samples }: { samples: EquitySample[] }) {
  const el = useRef<HTMLDivElement>(null);
  const chart = useRef<IChartApi | null>(null);
  const series = useRef<ISeriesApi<'Line'> | null>(null);
  useEffect(() => {
    if (!el.current) return;
    const c = createChart(el.current, {
      autoSize: true,
      layout: { background: { type: ColorType.Solid, color: '#0f1318' }, textColor: '#8b95a1', fontSize: 11, attributionLogo: true },
      grid: { vertLines: { color: '#1a2029' }, horzLines: { color: '#1a2029' } },
      timeScale: { timeVisible: true, secondsVisible: true, borderColor: '#252d38' },
      rightPriceScale: { borderColor: '#252d38' },
    });
    series.current = c.addSeries(LineSeries, { color: '#3b82f6', lineWidth: 2, priceFormat: { type: 'price', precision: 2, minMove: 0.01 } });
    chart.current = c;
    return () => {
      c.remove();
      chart.current = null;
      series.current = null;
    };
  }, []);
  useEffect(() => {
    // Drawing coordinates only.
    series.current?.setData(samples.map((s) => ({ time: s.t as UTCTimestamp, value: Number(s.equity) })));
    chart.current?.timeScale().fitContent();
  }, [samples]);
  return (
    <section className="panel equity-panel" aria-label="Equity curve">
      <header className="panel-header">
        <h2>Equity this session</h2>
        <span className="muted small">{samples.length} samples</span>
      </header>
      <div className="chart-wrap">
        <div className="chart-body" ref={el} />
      </div>
    </section>
  );
}

export function PortfolioPage({ equity }: { equity: EquitySample[] }) {
  const { data: portfolio, error } = usePortfolio();
  const { data: account } = useAccount();
  const instruments = useInstrumentMap();
  const positions = (portfolio?.positions ?? []).filter((p) => !(dec(p.quantity) ?? ZERO).isZero() || !(dec(p.realized_pnl) ?? ZERO).isZero());
  const totalPnl = portfolio ? (dec(portfolio.realized_pnl) ?? ZERO).add(dec(portfolio.unrealized_pnl) ?? ZERO) : null;

  return (
    <div className="portfolio">
      {error && (
        <div className="api-error" role="alert">
          {error.message}
        </div>
      )}
      <div className="cards">
        <div className="card">
          <span className="label">Equity</span>
          <span className="big num" data-testid="portfolio-equity">
            {formatMoney(portfolio?.equity ?? account?.equity ?? null)}
          </span>
        </div>
        <div className="card">
          <span className="label">Cash</span>
          <span className="big num" data-testid="portfolio-cash">
            {formatMoney(portfolio?.cash ?? null)}
          </span>
        </div>
        <div className="card">
          <span className="label">Reserved cash</span>
          <span className="big num">{formatMoney(portfolio?.reserved_cash ?? null)}</span>
        </div>
        <div className="card">
          <span className="label">Buying power</span>
          <span className="big num">{formatMoney(account?.buying_power ?? null)}</span>
        </div>
        <div className="card">
          <span className="label">Market value</span>
          <span className="big num">{formatMoney(portfolio?.market_value ?? null)}</span>
        </div>
        <div className="card">
          <span className="label">Unrealized P&amp;L</span>
          <span className="big">
            <Pnl value={portfolio?.unrealized_pnl} />
          </span>
        </div>
        <div className="card">
          <span className="label">Realized P&amp;L</span>
          <span className="big">
            <Pnl value={portfolio?.realized_pnl} />
          </span>
        </div>
        <div className="card">
          <span className="label">Total P&amp;L</span>
          <span className="big">
            <Pnl value={totalPnl ? totalPnl.toString() : null} />
          </span>
        </div>
      </div>
      <section className="panel" aria-label="Positions">
        <header className="panel-header">
          <h2>Positions</h2>
        </header>
        <div className="table-wrap">
          <table className="grid" data-testid="positions">
            <thead>
              <tr>
                <th>Symbol</th>
                <th className="num">Quantity</th>
                <th className="num">Avg cost</th>
                <th className="num">Market price</th>
                <th className="num">Market value</th>
                <th className="num">Unrealized P&amp;L</th>
                <th className="num">Realized P&amp;L</th>
              </tr>
            </thead>
            <tbody>
              {positions.map((p) => {
                const ins = instruments.get(p.symbol);
                const lot = ins?.lot_size ?? '0.0001';
                const tick = ins?.tick_size ?? '0.01';
                return (
                  <tr key={p.symbol} data-testid={`position-${p.symbol}`}>
                    <td>{p.symbol}</td>
                    <td className={`num ${signOf(p.quantity) < 0 ? 'down' : ''}`} data-testid="position-quantity">
                      {formatQty(p.quantity, lot)}
                    </td>
                    <td className="num">{formatPrice(p.average_cost, tick)}</td>
                    <td className="num">{formatPrice(p.market_price, tick)}</td>
                    <td className="num">{formatMoney(p.market_value)}</td>
                    <td className="num">
                      <Pnl value={p.unrealized_pnl} />
                    </td>
                    <td className="num">
                      <Pnl value={p.realized_pnl} />
                    </td>
                  </tr>
                );
              })}
              {positions.length === 0 && (
                <tr>
                  <td colSpan={7} className="empty">
                    No positions
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      </section>
      <div className="portfolio-charts">
        <Allocation positions={portfolio?.positions ?? []} cash={portfolio?.cash ?? null} equity={portfolio?.equity ?? null} />
        <EquityCurve samples={equity} />
      </div>
      <OrdersPanel symbol={null} />
    </div>
  );
}

