import { useQuery } from '@tanstack/react-query';
import { useRef } from 'react';
import type { Instrument } from '../api/types';
import { useTicker } from '../hooks';
import { useSession } from '../session';
import { dec, formatPct, formatPrice, signOf, type Dec } from '../lib/decimal';

/** The session's change of a symbol: from the ticker when it says, else against the opening reference. */
export function changeOf(last: Dec | null, open: Dec | null, tickerPct: string | null | undefined): Dec | null {
  const pct = dec(tickerPct ?? null);
  if (pct) return pct;
  if (!last || !open || open.isZero()) return null;
  return last.sub(open).div(open).mul(100);
}

function MarketTab({ ins, active, onSelect }: { ins: Instrument; active: boolean; onSelect: (s: string) => void }) {
  const { api } = useSession();
  const ticker = useTicker(ins.symbol);
  // Change is measured against the open of the oldest hourly candle of the last 24 hours;
  // with no history yet, against the reference price seen when the terminal opened.
  const day = useQuery({
    queryKey: ['day-open', ins.symbol],
    queryFn: () => api.candles(ins.symbol, '1h', 24),
    staleTime: 300_000,
    refetchInterval: 300_000,
  });
  const openRef = useRef(dec(ins.reference_price));
  const last = dec(ticker?.last_price ?? ticker?.price ?? ins.last_price);
  const shown = last ?? dec(ins.reference_price);
  const open = dec(ticker?.open ?? null) ?? dec(day.data?.[0]?.open ?? null) ?? openRef.current;
  const pct = changeOf(last, open, ticker?.change_pct);
  const dir = signOf(pct);
  return (
    <button
      type="button"
      role="tab"
      aria-selected={active}
      className={`market-tab${active ? ' active' : ''}`}
      onClick={() => onSelect(ins.symbol)}
      data-testid={`market-${ins.symbol}`}
      title={`${ins.symbol}: last price and 24h change`}
    >
      <span className="market-symbol">{ins.symbol}</span>
      <span className={`market-last num${last ? '' : ' muted'}`} title={last ? 'Last trade price' : 'Reference price (no trade yet)'}>
        {shown ? formatPrice(shown, ins.tick_size) : '—'}
      </span>
      <span className={`market-change num ${dir > 0 ? 'up' : dir < 0 ? 'down' : ''}`}>{formatPct(pct)}</span>
    </button>
  );
}

export function MarketSelector({
  instruments,
  selected,
  onSelect,
}: {
  instruments: Instrument[];
  selected: string | null;
  onSelect: (symbol: string) => void;
}) {
  return (
    <div className="market-selector" role="tablist" aria-label="Markets">
      {instruments.map((ins) => (
        <MarketTab key={ins.symbol} ins={ins} active={ins.symbol === selected} onSelect={onSelect} />
      ))}
    </div>
  );
}
