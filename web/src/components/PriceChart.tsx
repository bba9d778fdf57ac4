import {
  CandlestickSeries,
  ColorType,
  createChart,
  HistogramSeries,
  type IChartApi,
  type ISeriesApi,
  type UTCTimestamp,
} from 'lightweight-charts';
import { useEffect, useRef, useState } from 'react';
import { CANDLE_INTERVALS, type CandleInterval, type Instrument } from '../api/types';
import { candleSeconds, useCandles } from '../hooks';
import { decimalsOf } from '../lib/decimal';

const UP = '#16c784';
const DOWN = '#ea3943';

/** Candlesticks with volume for one symbol, live from the candles channel. */
export function PriceChart({ instrument }: { instrument: Instrument }) {
  const [interval, setInterval] = useState<CandleInterval>('1m');
  const { candles, version } = useCandles(instrument.symbol, interval);
  const container = useRef<HTMLDivElement>(null);
  const chartRef = useRef<IChartApi | null>(null);
  const candleRef = useRef<ISeriesApi<'Candlestick'> | null>(null);
  const volumeRef = useRef<ISeriesApi<'Histogram'> | null>(null);
  const fittedKey = useRef('');

  useEffect(() => {
    const el = container.current;
    if (!el) return;
    const chart = createChart(el, {
      autoSize: true,
      layout: {
        background: { type: ColorType.Solid, color: '#0f1318' },
        textColor: '#8b95a1',
        fontSize: 11,
        attributionLogo: true,
      },
      grid: { vertLines: { color: '#1a2029' }, horzLines: { color: '#1a2029' } },
      rightPriceScale: { borderColor: '#252d38' },
      timeScale: { borderColor: '#252d38', timeVisible: true, secondsVisible: true, barSpacing: 12, rightOffset: 4 },
      crosshair: { mode: 0 },
    });
    const candle = chart.addSeries(CandlestickSeries, {
      upColor: UP,
      downColor: DOWN,
      borderUpColor: UP,
      borderDownColor: DOWN,
      wickUpColor: UP,
      wickDownColor: DOWN,
    });
    const volume = chart.addSeries(HistogramSeries, {
      priceFormat: { type: 'volume' },
      priceScaleId: 'vol',
      lastValueVisible: false,
      priceLineVisible: false,
    });
    volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    candle.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.25 } });
    chartRef.current = chart;
    candleRef.current = candle;
    volumeRef.current = volume;
    return () => {
      chart.remove();
      chartRef.current = null;
      candleRef.current = null;
      volumeRef.current = null;
    };
  }, []);

  useEffect(() => {
    const places = decimalsOf(instrument.tick_size);
    candleRef.current?.applyOptions({
      priceFormat: { type: 'price', precision: places, minMove: Number(instrument.tick_size) },
    });
  }, [instrument.tick_size]);

  useEffect(() => {
    const candle = candleRef.current;
    const volume = volumeRef.current;
    if (!candle || !volume) return;
    // Chart coordinates are the one place decimals become floats: drawing only.
    candle.setData(
      candles.map((c) => ({
        time: candleSeconds(c) as UTCTimestamp,
        open: Number(c.open),
        high: Number(c.high),
        low: Number(c.low),
        close: Number(c.close),
      })),
    );
    volume.setData(
      candles.map((c) => ({
        time: candleSeconds(c) as UTCTimestamp,
        value: Number(c.volume),
        color: Number(c.close) >= Number(c.open) ? 'rgba(22,199,132,0.35)' : 'rgba(234,57,67,0.35)',
      })),
    );
    const key = `${instrument.symbol}:${interval}`;
    // On a new symbol or interval, jump to the latest bars at a readable bar width
    // (fitting a handful of bars to the whole width would draw them as slabs).
    if (candles.length > 0 && fittedKey.current !== key) {
      fittedKey.current = key;
      const ts = chartRef.current?.timeScale();
      ts?.applyOptions({ barSpacing: 12 });
      ts?.scrollToRealTime();
    }
  }, [candles, version, instrument.symbol, interval]);

  return (
    <section className="panel chart-panel" aria-label="Price chart">
      <header className="panel-header">
        <h2>{instrument.symbol}</h2>
        <div className="seg" role="group" aria-label="Candle interval">
          {CANDLE_INTERVALS.map((iv) => (
            <button
              key={iv}
              type="button"
              className={iv === interval ? 'active' : ''}
              aria-pressed={iv === interval}
              onClick={() => setInterval(iv)}
            >
              {iv}
            </button>
          ))}
        </div>
        <a className="attribution" href="https://www.tradingview.com/" target="_blank" rel="noreferrer">
          Charts by TradingView
        </a>
      </header>
      <div className="chart-wrap">
        <div className="chart-body" ref={container} />
        {candles.length === 0 && <div className="chart-empty">No trades yet for this interval</div>}
      </div>
    </section>
  );
}
