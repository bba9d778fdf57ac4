import { useCallback, useMemo, useState } from 'react';
import type { Instrument } from '../api/types';
import { MarketSelector } from '../components/MarketSelector';
import { DepthChart, OrderBookLadder, TradesTape } from '../components/MarketPanels';
import { OrdersPanel } from '../components/OrdersPanel';
import { OrderTicket, type PickedPrice } from '../components/OrderTicket';
import { PriceChart } from '../components/PriceChart';
import { useAccount, useBook, useTicker, useTrades } from '../hooks';
import { formatMoney } from '../lib/decimal';

export function AccountStrip() {
  const { data: account } = useAccount();
  return (
    <div className="account-strip" data-testid="account-strip">
      <div>
        <span className="label">Cash</span>
        <span className="num" data-testid="account-cash">
          {formatMoney(account?.cash ?? null)}
        </span>
      </div>
      <div>
        <span className="label">Reserved</span>
        <span className="num">{formatMoney(account?.reserved_cash ?? null)}</span>
      </div>
      <div>
        <span className="label">Buying power</span>
        <span className="num" data-testid="account-buying-power">
          {formatMoney(account?.buying_power ?? null)}
        </span>
      </div>
      <div>
        <span className="label">Equity</span>
        <span className="num">{formatMoney(account?.equity ?? null)}</span>
      </div>
      {account && !account.trading_enabled && <div className="halted">Trading halted</div>}
    </div>
  );
}

export function TradingPage({
  instruments,
  symbol,
  onSelect,
}: {
  instruments: Instrument[];
  symbol: string;
  onSelect: (s: string) => void;
}) {
  const base = instruments.find((i) => i.symbol === symbol) ?? instruments[0];
  const ticker = useTicker(base?.symbol ?? null);
  // The ticker's last price keeps the price-band check current between REST reloads.
  const ins = useMemo(() => {
    if (!base) return undefined;
    const last = ticker?.last_price ?? ticker?.price;
    return last ? { ...base, last_price: last } : base;
  }, [base, ticker]);
  const { view } = useBook(ins?.symbol ?? null, 50);
  const trades = useTrades(ins?.symbol ?? null);
  const { data: account } = useAccount();
  const [picked, setPicked] = useState<PickedPrice | null>(null);
  const onPick = useCallback((price: string, side: 'bid' | 'ask') => setPicked({ price, side, nonce: Date.now() }), []);

  if (!ins) return <div className="empty">No instruments configured.</div>;
  return (
    <div className="trading">
      <MarketSelector instruments={instruments} selected={ins.symbol} onSelect={onSelect} />
      <AccountStrip />
      <div className="trading-grid">
        <div className="col-main">
          <PriceChart instrument={ins} />
          <OrdersPanel symbol={ins.symbol} />
        </div>
        <div className="col-book">
          <OrderBookLadder ins={ins} view={view} onPick={onPick} />
          <TradesTape ins={ins} trades={trades} />
        </div>
        <div className="col-ticket">
          <OrderTicket ins={ins} book={view} account={account} picked={picked} />
          <DepthChart ins={ins} view={view} />
        </div>
      </div>
    </div>
  );
}
