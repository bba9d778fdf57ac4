import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { ApiError } from '../api/client';
import type { RiskLimitValue, RiskLimits } from '../api/types';
import { keys, useAccount, useOrders, usePortfolio } from '../hooks';
import { dec, Decimal, formatFixed, formatMoney, ZERO } from '../lib/decimal';
import { useSession } from '../session';
import { useToasts } from '../toasts';

interface LimitRow {
  name: string;
  value: RiskLimitValue;
  /** The platform default for the same limit, when the server reports defaults separately. */
  fallback: RiskLimitValue | undefined;
}

const NOT_LIMITS = new Set(['user_id', 'trading_enabled', 'global_halt']);

function scalar(v: unknown): v is RiskLimitValue {
  return v === null || ['string', 'number', 'boolean'].includes(typeof v);
}

/**
 * Rows of the limits document. The backend answers `{effective, account, defaults}`;
 * a flat object of limits is read as the effective limits.
 */
export function flattenLimits(limits: RiskLimits): LimitRow[] {
  const eff = limits.effective;
  const defaults = limits.defaults;
  const source = eff && typeof eff === 'object' ? (eff as Record<string, unknown>) : (limits as Record<string, unknown>);
  const defs = defaults && typeof defaults === 'object' ? (defaults as Record<string, unknown>) : {};
  const rows: LimitRow[] = [];
  for (const [name, value] of Object.entries(source)) {
    if (NOT_LIMITS.has(name) || !scalar(value)) continue;
    const d = defs[name];
    rows.push({ name, value, fallback: scalar(d) ? d : undefined });
  }
  return rows;
}

function show(v: RiskLimitValue): string {
  if (v === null) return 'unlimited';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  const d = dec(String(v));
  return d ? formatFixed(d, Math.max(0, d.decimalPlaces())) : String(v);
}

function label(name: string): string {
  return name.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
}

export function RiskPage() {
  const { api } = useSession();
  const qc = useQueryClient();
  const toasts = useToasts();
  const limits = useQuery({ queryKey: keys.risk, queryFn: () => api.riskLimits() });
  const { data: account } = useAccount();
  const open = useOrders('open');
  const { data: portfolio } = usePortfolio();
  const me = useQuery({ queryKey: ['me'], queryFn: () => api.me(), staleTime: 60_000 });
  const isAdmin = me.data?.role === 'admin';
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const kill = useMutation({
    mutationFn: (enabled: boolean) => api.killSwitch(enabled),
    onSuccess: (_r, enabled) => {
      setConfirming(false);
      setError(null);
      toasts.push('info', enabled ? 'Trading halted' : 'Trading resumed', enabled ? 'New orders are blocked and open orders were canceled.' : undefined);
      void qc.invalidateQueries({ queryKey: keys.account });
      void qc.invalidateQueries({ queryKey: ['orders'] });
      void qc.invalidateQueries({ queryKey: keys.risk });
    },
    onError: (e) => setError(e instanceof ApiError ? `${e.code}: ${e.message}` : String(e)),
  });

  const openCount = open.data?.length ?? 0;
  const positions = portfolio?.positions ?? [];
  const largestPosition = positions.reduce((m, p) => Decimal.max(m, (dec(p.quantity) ?? ZERO).abs()), ZERO);
  const largestShort = positions.reduce((m, p) => Decimal.max(m, (dec(p.quantity) ?? ZERO).neg()), ZERO);
  const grossExposure = positions.reduce((m, p) => m.add((dec(p.market_value) ?? ZERO).abs()), ZERO);

  const usageOf = (name: string): Decimal | null => {
    const n = name.toLowerCase();
    if (n.includes('open_order')) return new Decimal(openCount);
    if (n.includes('short')) return largestShort;
    if (n.includes('position') && !n.includes('notional')) return largestPosition;
    if (n.includes('exposure') || (n.includes('notional') && n.includes('position'))) return grossExposure;
    return null;
  };

  const rows = limits.data ? flattenLimits(limits.data) : [];
  const halted = account ? !account.trading_enabled : false;

  return (
    <div className="risk">
      <section className={`panel kill-panel${halted ? ' halted' : ''}`} aria-label="Kill switch">
        <header className="panel-header">
          <h2>Kill switch</h2>
          <span className={`badge ${halted ? 'down' : 'up'}`} data-testid="trading-state">
            {halted ? 'Trading halted' : 'Trading enabled'}
          </span>
        </header>
        <p className="muted">
          Halting blocks every new order from this account and cancels its open orders at once. Use it when something is going wrong.
        </p>
        {!halted && !confirming && (
          <button type="button" className="submit sell" onClick={() => setConfirming(true)}>
            Halt my trading
          </button>
        )}
        {!halted && confirming && (
          <div className="confirm" role="alertdialog" aria-label="Confirm halt">
            <span>Cancel all {openCount} open orders and block new ones?</span>
            <button type="button" className="submit sell" autoFocus disabled={kill.isPending} onClick={() => kill.mutate(true)}>
              Yes, halt now
            </button>
            <button type="button" className="small-btn" onClick={() => setConfirming(false)}>
              Keep trading
            </button>
          </div>
        )}
        {halted && isAdmin && (
          <button type="button" className="submit" disabled={kill.isPending} onClick={() => kill.mutate(false)}>
            Resume trading
          </button>
        )}
        {halted && !isAdmin && <p className="halted-note">Trading stays halted until an administrator lifts the switch.</p>}
        {error && (
          <div className="api-error" role="alert">
            {error}
          </div>
        )}
      </section>
      <section className="panel" aria-label="Risk limits">
        <header className="panel-header">
          <h2>Limits and usage</h2>
        </header>
        {limits.error && (
          <div className="api-error" role="alert">
            {limits.error.message}
          </div>
        )}
        <div className="table-wrap">
          <table className="grid" data-testid="risk-limits">
            <thead>
              <tr>
                <th>Limit</th>
                <th className="num">Your limit</th>
                <th className="num">Platform default</th>
                <th className="num">Usage</th>
                <th>Used</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => {
                const limit = typeof r.value === 'boolean' ? null : dec(r.value === null ? null : String(r.value));
                const usage = usageOf(r.name);
                const pct = usage && limit && !limit.isZero() ? Decimal.min(usage.div(limit).mul(100), new Decimal(100)) : null;
                return (
                  <tr key={r.name}>
                    <td>{label(r.name)}</td>
                    <td className="num">{show(r.value)}</td>
                    <td className="num muted">{r.fallback === undefined ? '' : show(r.fallback)}</td>
                    <td className="num">{usage ? (r.name.includes('notional') || r.name.includes('exposure') ? formatMoney(usage) : formatFixed(usage, Math.min(4, usage.decimalPlaces()))) : '—'}</td>
                    <td>
                      {pct && (
                        <div className="usage">
                          <span style={{ width: `${pct.toDecimalPlaces(1).toString()}%` }} className={pct.greaterThan(80) ? 'hot' : ''} />
                        </div>
                      )}
                    </td>
                  </tr>
                );
              })}
              {rows.length === 0 && !limits.isLoading && (
                <tr>
                  <td colSpan={5} className="empty">
                    No limits reported
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      </section>
    </div>
  );
}
