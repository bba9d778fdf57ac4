// The session's equity curve: one sample per portfolio refresh, kept in sessionStorage
// per user so a reload of the tab keeps the curve. Values stay decimal strings.

export interface EquitySample {
  /** Seconds since the epoch. */
  t: number;
  equity: string;
}

const MAX_SAMPLES = 5000;

function key(user: string): string {
  return `hft.equity.${user}`;
}

export function loadEquity(user: string): EquitySample[] {
  try {
    const raw = sessionStorage.getItem(key(user));
    if (!raw) return [];
    const parsed = JSON.parse(raw) as unknown;
    return Array.isArray(parsed) ? (parsed as EquitySample[]).filter((s) => typeof s.t === 'number' && typeof s.equity === 'string') : [];
  } catch {
    return [];
  }
}

/** Appends a sample (one per second at most: a later one in the same second replaces it). */
export function appendEquity(samples: EquitySample[], sample: EquitySample): EquitySample[] {
  const last = samples[samples.length - 1];
  if (last && last.t >= sample.t) return [...samples.slice(0, -1), { t: last.t, equity: sample.equity }];
  const next = [...samples, sample];
  return next.length > MAX_SAMPLES ? next.slice(next.length - MAX_SAMPLES) : next;
}

export function saveEquity(user: string, samples: EquitySample[]): void {
  try {
    sessionStorage.setItem(key(user), JSON.stringify(samples));
  } catch {
    // A full sessionStorage only loses the curve's persistence across reloads.
  }
}
