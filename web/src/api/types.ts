// Shapes of the backend's REST and WebSocket contract (shared/API.md), typed by hand.
// Decimal values (prices, quantities, money) travel as strings and stay strings here;
// src/lib/decimal.ts is the only place that does arithmetic on them.
// The *_FIELDS lists are checked against the backend's OpenAPI schema by the browser
// suite (e2e/contract.test.ts), so a renamed or dropped field fails a test.

export type DecimalString = string;

export type Side = 'buy' | 'sell';
export type OrderType = 'limit' | 'market';
export type TimeInForce = 'gtc' | 'day' | 'ioc' | 'fok';
export type OrderStatus =
  | 'pending_new'
  | 'new'
  | 'partially_filled'
  | 'filled'
  | 'canceled'
  | 'rejected'
  | 'expired';

export const OPEN_STATUSES: readonly OrderStatus[] = ['pending_new', 'new', 'partially_filled'];

export interface User {
  id: string;
  username: string;
  role?: string;
}

export interface TokenResponse {
  access_token: string;
  token_type: string;
  expires_in: number;
}

export interface Account {
  user_id: string;
  cash: DecimalString;
  reserved_cash: DecimalString;
  buying_power: DecimalString;
  equity: DecimalString;
  trading_enabled: boolean;
}
export const ACCOUNT_FIELDS = [
  'user_id',
  'cash',
  'reserved_cash',
  'buying_power',
  'equity',
  'trading_enabled',
] as const satisfies readonly (keyof Account)[];

export interface Instrument {
  symbol: string;
  tick_size: DecimalString;
  lot_size: DecimalString;
  min_quantity: DecimalString;
  max_quantity: DecimalString;
  price_band_pct: DecimalString;
  reference_price: DecimalString;
  last_price: DecimalString | null;
  status: string;
}
export const INSTRUMENT_FIELDS = [
  'symbol',
  'tick_size',
  'lot_size',
  'min_quantity',
  'max_quantity',
  'price_band_pct',
  'reference_price',
  'last_price',
  'status',
] as const satisfies readonly (keyof Instrument)[];

export interface OrderCreate {
  symbol: string;
  side: Side;
  type: OrderType;
  time_in_force: TimeInForce;
  quantity: DecimalString;
  price?: DecimalString;
  post_only?: boolean;
  client_order_id?: string;
}

export interface OrderAmend {
  quantity?: DecimalString;
  price?: DecimalString;
}

export interface OrderFill {
  trade_id: string;
  price: DecimalString;
  quantity: DecimalString;
  liquidity: 'maker' | 'taker';
  fee: DecimalString;
  time: string;
}

export interface Order {
  id: string;
  client_order_id: string | null;
  symbol: string;
  side: Side;
  type: OrderType;
  time_in_force: TimeInForce;
  price: DecimalString | null;
  quantity: DecimalString;
  filled_quantity: DecimalString;
  remaining_quantity: DecimalString;
  average_price: DecimalString | null;
  status: OrderStatus;
  reason: string | null;
  created_at: string;
  updated_at: string;
  fills?: OrderFill[];
}
export const ORDER_FIELDS = [
  'id',
  'client_order_id',
  'symbol',
  'side',
  'type',
  'time_in_force',
  'price',
  'quantity',
  'filled_quantity',
  'remaining_quantity',
  'average_price',
  'status',
  'reason',
  'created_at',
  'updated_at',
] as const satisfies readonly (keyof Order)[];

/** A fill as listed by GET /fills and pushed on the `fills` channel. */
export interface Fill {
  trade_id: string;
  order_id?: string;
  symbol?: string;
  side?: Side;
  price: DecimalString;
  quantity: DecimalString;
  liquidity: 'maker' | 'taker';
  fee: DecimalString;
  time: string;
}
export const FILL_FIELDS = [
  'trade_id',
  'price',
  'quantity',
  'liquidity',
  'fee',
  'time',
] as const satisfies readonly (keyof Fill)[];

export interface Position {
  symbol: string;
  quantity: DecimalString;
  average_cost: DecimalString;
  market_price: DecimalString | null;
  market_value: DecimalString;
  unrealized_pnl: DecimalString;
  realized_pnl: DecimalString;
}
export const POSITION_FIELDS = [
  'symbol',
  'quantity',
  'average_cost',
  'market_price',
  'market_value',
  'unrealized_pnl',
  'realized_pnl',
] as const satisfies readonly (keyof Position)[];

export interface Portfolio {
  cash: DecimalString;
  reserved_cash: DecimalString;
  positions: Position[];
  market_value: DecimalString;
  equity: DecimalString;
  realized_pnl: DecimalString;
  unrealized_pnl: DecimalString;
}
export const PORTFOLIO_FIELDS = [
  'cash',
  'reserved_cash',
  'positions',
  'market_value',
  'equity',
  'realized_pnl',
  'unrealized_pnl',
] as const satisfies readonly (keyof Portfolio)[];

/** One price level: [price, quantity]. */
export type Level = [DecimalString, DecimalString];

export interface BookSnapshot {
  symbol: string;
  sequence: number;
  bids: Level[];
  asks: Level[];
}

export interface Trade {
  trade_id: string;
  price: DecimalString;
  quantity: DecimalString;
  taker_side: Side;
  time: string;
}
export const TRADE_FIELDS = [
  'trade_id',
  'price',
  'quantity',
  'taker_side',
  'time',
] as const satisfies readonly (keyof Trade)[];

export type CandleInterval = '1s' | '1m' | '5m' | '1h';
export const CANDLE_INTERVALS: readonly CandleInterval[] = ['1s', '1m', '5m', '1h'];

export interface Candle {
  time: string | number;
  open: DecimalString;
  high: DecimalString;
  low: DecimalString;
  close: DecimalString;
  volume: DecimalString;
}

export interface Ticker {
  symbol?: string;
  last_price?: DecimalString | null;
  price?: DecimalString | null;
  change?: DecimalString | null;
  change_pct?: DecimalString | null;
  open?: DecimalString | null;
  best_bid?: DecimalString | null;
  best_ask?: DecimalString | null;
  volume?: DecimalString | null;
}

/** GET /risk/limits: limits are free-form name -> value pairs, kept as the server sends them. */
export type RiskLimitValue = string | number | boolean | null;
export interface RiskLimits {
  [key: string]: RiskLimitValue | Record<string, RiskLimitValue> | undefined;
}

export interface ApiErrorBody {
  error: { code: string; message: string; field?: string | null };
}

/** A message from the server on the WebSocket. */
export interface WsMessage {
  channel?: string;
  type?: string;
  seq?: number;
  data?: unknown;
  op?: string;
  error?: { code: string; message: string } | string;
}
