import DecimalJs from 'decimal.js';

// Prices, quantities and money never pass through a JavaScript number in arithmetic:
// they are parsed from the server's decimal strings into Decimal and formatted back with
// the instrument's tick and lot. Numbers appear only as drawing coordinates for charts.
export const Decimal = DecimalJs.clone({ precision: 50, rounding: DecimalJs.ROUND_HALF_EVEN, toExpNeg: -30, toExpPos: 40 });
export type Decimal = DecimalJs;
export type Dec = DecimalJs;
const Dec = Decimal;

export const ZERO = new Dec(0);

/** Parses a server decimal string (or null) into a Decimal; null/empty/garbage gives null. */
export function dec(value: string | number | null | undefined): Decimal | null {
  if (value === null || value === undefined) return null;
  const s = String(value).trim();
  if (s === '' || !/^-?\d+(\.\d+)?$/.test(s)) return null;
  return new Dec(s);
}

/** Like dec() but 0 for missing values (for sums of server-provided amounts). */
export function decOr0(value: string | number | null | undefined): Decimal {
  return dec(value) ?? ZERO;
}

/** Number of decimal places a step like "0.01" or "0.0001" or "1" carries. */
export function decimalsOf(step: string): number {
  const d = dec(step);
  if (!d) return 0;
  return Math.max(0, d.decimalPlaces());
}

function group(intPart: string): string {
  return intPart.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/**
 * Formats a decimal to a fixed number of places (ROUND_HALF_EVEN), optionally with
 * thousands separators. A missing value formats as an em dash.
 */
export function formatFixed(
  value: string | Decimal | null | undefined,
  places: number,
  opts: { grouping?: boolean; sign?: boolean } = {},
): string {
  const d = value instanceof Dec ? value : dec(value as string | null | undefined);
  if (!d) return '—';
  let s = d.toFixed(places);
  if (/^-0(\.0*)?$/.test(s)) s = s.slice(1);
  const neg = s.startsWith('-');
  if (neg) s = s.slice(1);
  const [i = '0', f] = s.split('.');
  const body = (opts.grouping === false ? i : group(i)) + (f !== undefined ? `.${f}` : '');
  if (neg) return `-${body}`;
  if (opts.sign && !d.isZero()) return `+${body}`;
  return body;
}

/** A price on the instrument's tick grid (e.g. tick "0.01" -> 2 places). */
export function formatPrice(value: string | Decimal | null | undefined, tick: string): string {
  return formatFixed(value, decimalsOf(tick));
}

/** A quantity with the instrument's lot precision (e.g. lot "0.0001" -> 4 places). */
export function formatQty(value: string | Decimal | null | undefined, lot: string): string {
  return formatFixed(value, decimalsOf(lot));
}

/** Money (cash, P&L, notional) with two places and grouping. */
export function formatMoney(value: string | Decimal | null | undefined, opts: { sign?: boolean } = {}): string {
  return formatFixed(value, 2, opts);
}

/** Percentage with two places and an explicit sign. */
export function formatPct(value: Decimal | null): string {
  if (!value) return '—';
  return `${formatFixed(value, 2, { sign: true, grouping: false })}%`;
}

/** Sign of a decimal string: -1, 0, 1 (0 for missing). */
export function signOf(value: string | Decimal | null | undefined): -1 | 0 | 1 {
  const d = value instanceof Dec ? value : dec(value as string | null | undefined);
  if (!d || d.isZero()) return 0;
  return d.isNegative() ? -1 : 1;
}

export type ParseResult = { ok: true; value: Decimal } | { ok: false; error: string };

/**
 * Parses what a person typed into a price or quantity box. Accepts plain decimals
 * ("12", "12.5", ".5"); rejects signs, exponents, NaN/Infinity, separators and empty input.
 */
export function parseInput(raw: string, what: string): ParseResult {
  const s = raw.trim();
  if (s === '') return { ok: false, error: `Enter a ${what}` };
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(s)) return { ok: false, error: `${capitalize(what)} must be a plain positive number` };
  const v = new Dec(s.startsWith('.') ? `0${s}` : s);
  if (v.isZero()) return { ok: false, error: `${capitalize(what)} must be greater than zero` };
  return { ok: true, value: v };
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** True when value is an exact multiple of step (both decimals, step > 0). */
export function isMultipleOf(value: Decimal, step: string): boolean {
  const st = dec(step);
  if (!st || st.isZero()) return true;
  return value.mod(st).isZero();
}

/** Snaps a value to the step grid: 'down', 'up' or 'nearest'. */
export function snapToStep(value: Decimal, step: string, mode: 'down' | 'up' | 'nearest' = 'nearest'): Decimal {
  const st = dec(step);
  if (!st || st.isZero()) return value;
  const q = value.div(st);
  const n = mode === 'down' ? q.floor() : mode === 'up' ? q.ceil() : q.toDecimalPlaces(0, Dec.ROUND_HALF_UP);
  return n.mul(st);
}

/**
 * Moves a typed value by `count` steps (negative = down), first snapping it onto the grid.
 * Never goes below one step. Returns the canonical string with the step's decimals.
 */
export function stepValue(raw: string, step: string, count: number, fallback: string): string {
  const st = dec(step);
  const places = decimalsOf(step);
  if (!st) return raw;
  const parsed = parseInput(raw, 'value');
  const base = parsed.ok ? parsed.value : dec(fallback) ?? st;
  const snapped = isMultipleOf(base, step) ? base : snapToStep(base, step, count > 0 ? 'down' : 'up');
  let next = snapped.add(st.mul(count));
  if (next.lessThan(st)) next = st;
  return next.toFixed(places);
}

/** Canonical decimal string for sending: no exponent, trailing zeros kept to `places`. */
export function toWire(value: Decimal, places: number): string {
  return value.toFixed(places);
}
