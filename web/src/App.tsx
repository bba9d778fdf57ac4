import { QueryClientProvider } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { useInstruments, usePortfolio, usePrivateStreams, useWsStatus } from './hooks';
import { appendEquity, loadEquity, saveEquity, type EquitySample } from './lib/equity';
import { LoginPage } from './pages/Login';
import { PortfolioPage } from './pages/Portfolio';
import { RiskPage } from './pages/Risk';
import { TradingPage } from './pages/Trading';
import { useRoute, type Route } from './router';
import { SessionProvider, useSession } from './session';
import { ToastProvider, useToasts } from './toasts';

function ConnectionStatus() {
  const status = useWsStatus();
  const text = status === 'live' ? 'Live' : status === 'connecting' ? 'Connecting' : status === 'reconnecting' ? 'Reconnecting' : 'Offline';
  return (
    <span className={`conn conn-${status}`} data-testid="ws-status" data-status={status} title={`Market data stream: ${text}`}>
      <span className="dot" aria-hidden="true" />
      {text}
    </span>
  );
}

/** Samples the portfolio's equity on every refresh for the session's equity curve. */
function useEquityCurve(username: string): EquitySample[] {
  const { data } = usePortfolio();
  const [samples, setSamples] = useState<EquitySample[]>(() => loadEquity(username));
  useEffect(() => {
    if (!data?.equity) return;
    setSamples((s) => {
      const next = appendEquity(s, { t: Math.floor(Date.now() / 1000), equity: data.equity });
      saveEquity(username, next);
      return next;
    });
  }, [data, username]);
  return samples;
}

function Shell({ route, navigate }: { route: Route; navigate: (r: Route, replace?: boolean) => void }) {
  const { username, logout, ws } = useSession();
  const toasts = useToasts();
  const instruments = useInstruments();
  usePrivateStreams();
  const equity = useEquityCurve(username ?? '');
  const list = instruments.data ?? [];
  const symbol = route.name === 'trade' && route.symbol && list.some((i) => i.symbol === route.symbol) ? route.symbol : list[0]?.symbol ?? null;

  useEffect(() => ws.onError((m) => toasts.push('error', 'Stream error', m, `ws:${m}`)), [ws, toasts]);

  useEffect(() => {
    if (route.name === 'login' || route.name === 'signup') navigate({ name: 'trade', symbol }, true);
  }, [route.name, navigate, symbol]);

  // Alt+1/2/3 switch screens from anywhere.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (!e.altKey) return;
      if (e.key === '1') navigate({ name: 'trade', symbol });
      else if (e.key === '2') navigate({ name: 'portfolio' });
      else if (e.key === '3') navigate({ name: 'risk' });
      else return;
      e.preventDefault();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [navigate, symbol]);

  const nav = (r: Route, label: string, hint: string) => (
    <a
      href={r.name === 'trade' ? `/trade/${symbol ?? ''}` : `/${r.name}`}
      className={route.name === r.name ? 'active' : ''}
      aria-current={route.name === r.name ? 'page' : undefined}
      title={hint}
      onClick={(e) => {
        e.preventDefault();
        navigate(r);
      }}
    >
      {label}
    </a>
  );

  return (
    <div className="app">
      <header className="topbar">
        <div className="brand">
          <span className="logo" aria-hidden="true" />
          HFT Terminal
        </div>
        <nav className="nav" aria-label="Screens">
          {nav({ name: 'trade', symbol }, 'Trade', 'Alt+1')}
          {nav({ name: 'portfolio' }, 'Portfolio', 'Alt+2')}
          {nav({ name: 'risk' }, 'Risk', 'Alt+3')}
        </nav>
        <div className="topbar-right">
          <ConnectionStatus />
          <span className="user" data-testid="username">
            {username}
          </span>
          <button type="button" className="small-btn" onClick={() => logout()}>
            Log out
          </button>
        </div>
      </header>
      <main className="content">
        {instruments.error && (
          <div className="api-error" role="alert">
            Cannot load instruments: {instruments.error.message}
          </div>
        )}
        {(route.name === 'trade' || route.name === 'login' || route.name === 'signup') && symbol && (
          <TradingPage instruments={list} symbol={symbol} onSelect={(s) => navigate({ name: 'trade', symbol: s })} />
        )}
        {route.name === 'portfolio' && <PortfolioPage equity={equity} />}
        {route.name === 'risk' && <RiskPage />}
      </main>
    </div>
  );
}

function Gate() {
  const { token } = useSession();
  const [route, navigate] = useRoute();
  if (!token) {
    const mode = route.name === 'signup' ? 'signup' : 'login';
    return <LoginPage mode={mode} onSwitch={(m) => navigate({ name: m })} />;
  }
  return <Shell route={route} navigate={navigate} />;
}

function WithQuery() {
  const { queryClient } = useSession();
  return (
    <QueryClientProvider client={queryClient}>
      <ToastProvider>
        <Gate />
      </ToastProvider>
    </QueryClientProvider>
  );
}

export function App() {
  return (
    <SessionProvider>
      <WithQuery />
    </SessionProvider>
  );
}
