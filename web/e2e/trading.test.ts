import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ACCOUNT_FIELDS,
  FILL_FIELDS,
  INSTRUMENT_FIELDS,
  ORDER_FIELDS,
  PORTFOLIO_FIELDS,
  POSITION_FIELDS,
  TRADE_FIELDS,
  type Fill,
  type Order,
} from '../src/api/types';
import { Decimal, formatMoney } from '../src/lib/decimal';
import { launchBrowser, newWatchedPage, type WatchedPage } from './browser';
import { REPO_DIR, Rest, Stack, WEB_DIR } from './stack';

// One scenario across two traders, in order: each step builds on the one before.

const PASSWORD = 'correct-horse-battery-9';
const RESULTS = path.join(WEB_DIR, 'test-results');
const START_CASH = new Decimal('1000000');

let stack: Stack;
let browser: Browser;
let alice: WatchedPage;
let bob: WatchedPage;
const names = { a: `alice${Date.now() % 100000}`, b: `bob${Date.now() % 100000}` };

async function signUp(w: WatchedPage, username: string): Promise<void> {
  const p = w.page;
  await p.goto('/signup');
  await p.fill('input[name=username]', username);
  await p.fill('input[name=password]', PASSWORD);
  await p.fill('input[name=confirm]', PASSWORD);
  await p.click('button[type=submit]');
  await p.waitForSelector('[data-testid=ws-status][data-status=live]');
  await expect.poll(() => p.textContent('[data-testid=username]')).toBe(username);
}

interface TicketOrder {
  side: 'buy' | 'sell';
  type: 'limit' | 'market';
  quantity: string;
  price?: string;
  tif?: 'gtc' | 'day' | 'ioc' | 'fok';
}

async function fillTicket(p: Page, o: TicketOrder): Promise<void> {
  await p.click(`.side-toggle .${o.side}`);
  await p.click(`.ticket .seg button:has-text("${o.type === 'limit' ? 'Limit' : 'Market'}")`);
  if (o.type === 'limit' && o.price !== undefined) await p.fill('input[name=price]', o.price);
  await p.fill('input[name=quantity]', o.quantity);
  if (o.tif) await p.selectOption('select[name=tif]', o.tif);
}

/** Places an order through the ticket and returns the result line's text. */
async function placeOrder(p: Page, o: TicketOrder): Promise<string> {
  await fillTicket(p, o);
  const resultId = () => p.evaluate(() => document.querySelector('[data-testid=order-result]')?.getAttribute('data-order-id') ?? null);
  const before = await resultId();
  await p.click('[data-testid=submit-order]');
  await expect
    .poll(async () => {
      const err = await p.locator('[data-testid=order-error]').count();
      if (err) return 'error';
      const id = await resultId();
      return id && id !== before ? 'done' : 'waiting';
    })
    .not.toBe('waiting');
  if (await p.locator('[data-testid=order-error]').count()) throw new Error(`order failed: ${await p.textContent('[data-testid=order-error]')}`);
  return (await p.textContent('[data-testid=order-result]')) ?? '';
}

async function openTab(p: Page, name: 'Open orders' | 'Order history' | 'Fills'): Promise<void> {
  await p.click(`.orders-panel .tabs button:has-text("${name}")`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

describe('trading terminal in a real browser against a real stack', () => {
  beforeAll(async () => {
    mkdirSync(RESULTS, { recursive: true });
    stack = new Stack();
    await stack.start();
    browser = await launchBrowser();
    alice = await newWatchedPage(browser, 'alice', stack.baseURL);
    bob = await newWatchedPage(browser, 'bob', stack.baseURL);
  });

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it('serves the UI with SPA routing and a login screen', async () => {
    const res = await alice.page.goto('/trade/AAPL');
    expect(res?.status()).toBe(200);
    await alice.page.waitForSelector('form[aria-label="Log in"]');
  });

  it('typed client fields exist in the backend OpenAPI schema', async () => {
    const schema = (await (await fetch(`${stack.baseURL}/openapi.json`)).json()) as {
      components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
    };
    const schemas = Object.values(schema.components.schemas).map((s) => new Set(Object.keys(s.properties ?? {})));
    const lists: Record<string, readonly string[]> = {
      account: ACCOUNT_FIELDS,
      instrument: INSTRUMENT_FIELDS,
      order: ORDER_FIELDS,
      fill: FILL_FIELDS,
      position: POSITION_FIELDS,
      portfolio: PORTFOLIO_FIELDS,
      trade: TRADE_FIELDS,
    };
    for (const [name, fields] of Object.entries(lists)) {
      const match = schemas.some((props) => fields.every((f) => props.has(f)));
      expect(match, `no schema in openapi.json has every ${name} field: ${fields.join(', ')}`).toBe(true);
    }
  });

  it('two users sign up and land on the live trading screen', async () => {
    await signUp(alice, names.a);
    await signUp(bob, names.b);
    for (const w of [alice, bob]) {
      await w.page.click('[data-testid=market-AAPL]');
      await expect.poll(() => w.page.textContent('[data-testid=account-cash]')).toBe('1,000,000.00');
    }
  });

  it('A sells at a limit, B sees it in the book and buys it with a market order', async () => {
    const result = await placeOrder(alice.page, { side: 'sell', type: 'limit', price: '190.50', quantity: '10', tif: 'gtc' });
    expect(result).toContain('new');

    const ask = bob.page.locator('[data-testid=book-ask][data-price="190.5"]');
    await ask.waitFor();
    expect(await ask.locator('.qty').textContent()).toBe('10');
    // A click on the level fills the ticket: buy at that price.
    await ask.click();
    await expect.poll(() => bob.page.inputValue('input[name=price]')).toBe('190.50');
    await expect.poll(() => bob.page.getAttribute('.side-toggle .buy', 'aria-pressed')).toBe('true');

    await fillTicket(bob.page, { side: 'buy', type: 'market', quantity: '10' });
    await expect.poll(() => bob.page.textContent('[data-testid=estimated-cost]')).toBe('1,905.00');
    await bob.page.click('[data-testid=submit-order]');
    await expect.poll(() => bob.page.textContent('[data-testid=order-result]')).toContain('filled');
  });

  it('both see the fill, and cash and positions change by exactly the trade and its fees', async () => {
    await alice.page.locator('[data-testid=toast-fill]').first().waitFor();
    await bob.page.locator('[data-testid=toast-fill]').first().waitFor();
    for (const w of [alice, bob]) {
      await openTab(w.page, 'Fills');
      await w.page.locator('[data-testid=fills] tbody tr:has-text("190.50")').first().waitFor();
    }

    const restA = new Rest(stack.baseURL);
    await restA.login(names.a, PASSWORD);
    const restB = new Rest(stack.baseURL);
    await restB.login(names.b, PASSWORD);
    const [fillA] = await restA.call<Fill[]>('GET', '/fills');
    const [fillB] = await restB.call<Fill[]>('GET', '/fills');
    expect(fillA?.liquidity).toBe('maker');
    expect(fillB?.liquidity).toBe('taker');
    const notional = new Decimal('190.50').mul(10);
    const cashA = START_CASH.add(notional).sub(fillA!.fee);
    const cashB = START_CASH.sub(notional).sub(fillB!.fee);
    await expect.poll(() => alice.page.textContent('[data-testid=account-cash]')).toBe(formatMoney(cashA));
    await expect.poll(() => bob.page.textContent('[data-testid=account-cash]')).toBe(formatMoney(cashB));

    for (const [w, qty] of [
      [alice, '-10'],
      [bob, '10'],
    ] as const) {
      await w.page.click('nav >> text=Portfolio');
      const row = w.page.locator('[data-testid=position-AAPL]');
      await row.waitFor();
      await expect.poll(() => row.locator('[data-testid=position-quantity]').textContent()).toBe(qty);
      await expect.poll(() => row.locator('td').nth(2).textContent()).toBe('190.50');
      await w.page.click('nav >> text=Trade');
      await w.page.waitForSelector('[data-testid=submit-order]');
    }
    expect(await alice.page.textContent('[data-testid=account-cash]')).toBe(formatMoney(cashA));
  });

  it('A places a resting order, amends its price and quantity inline, then cancels it', async () => {
    const p = alice.page;
    await openTab(p, 'Open orders');
    const result = await placeOrder(p, { side: 'buy', type: 'limit', price: '185.00', quantity: '5', tif: 'day' });
    expect(result).toContain('new');
    const row = p.locator('[data-testid=open-order]');
    await expect.poll(() => row.count()).toBe(1);
    await expect.poll(() => row.textContent()).toContain('185.00');

    await row.locator('button:has-text("Amend")').click();
    await row.locator('input[name=amend-price]').fill('185.50');
    await row.locator('input[name=amend-quantity]').fill('4');
    await row.locator('button:has-text("Save")').click();
    await expect.poll(() => row.locator('td').nth(4).textContent()).toBe('185.50');
    await expect.poll(() => row.locator('td').nth(5).textContent()).toBe('4');
    // The other trader's book shows the amended level.
    await bob.page.locator('[data-testid=book-bid][data-price="185.5"] .qty:text-is("4")').waitFor();

    await row.locator('button:has-text("Cancel")').click();
    await expect.poll(() => row.count()).toBe(0);
    await bob.page.locator('[data-testid=book-bid][data-price="185.5"]').waitFor({ state: 'detached' });
    await openTab(p, 'Order history');
    await p.locator('[data-testid=order-history] tbody tr:has-text("canceled")').first().waitFor();
    await openTab(p, 'Open orders');
  });

  it('an order the ticket cannot send shows why, and one the API refuses shows the API error', async () => {
    const p = alice.page;
    alice.phase = 'invalid-order';
    await fillTicket(p, { side: 'sell', type: 'limit', price: '190.005', quantity: '1' });
    await p.click('[data-testid=submit-order]');
    await p.locator('.field-error:has-text("tick size 0.01")').waitFor();

    await fillTicket(p, { side: 'sell', type: 'limit', price: '200.00', quantity: '60000' });
    await p.click('[data-testid=submit-order]');
    const err = p.locator('[data-testid=order-error]');
    await err.waitFor();
    const text = (await err.textContent()) ?? '';
    expect(text).toContain('order_notional_limit');
    expect(text).toContain('exceeds the limit');
    await p.locator('[data-testid=toast-reject]').first().waitFor();
    alice.phase = 'after-invalid';
  });

  it('shows reconnecting while the backend restarts, then recovers live data', async () => {
    alice.phase = bob.phase = 'restart';
    const restart = stack.restartApi(2000);
    await bob.page.waitForSelector('[data-testid=ws-status][data-status=reconnecting]');
    await restart;
    await bob.page.waitForSelector('[data-testid=ws-status][data-status=live]', { timeout: 30_000 });
    await alice.page.waitForSelector('[data-testid=ws-status][data-status=live]', { timeout: 30_000 });
    alice.phase = bob.phase = 'after-restart';
    // Resubscribed: a new order shows up in the other trader's book without a reload.
    const result = await placeOrder(alice.page, { side: 'sell', type: 'limit', price: '195.00', quantity: '3', tif: 'gtc' });
    expect(result).toContain('new');
    await bob.page.locator('[data-testid=book-ask][data-price="195"]').waitFor();
  });

  it('renders a busy market for the screenshots', async () => {
    const restA = new Rest(stack.baseURL);
    await restA.login(names.a, PASSWORD);
    const restB = new Rest(stack.baseURL);
    await restB.login(names.b, PASSWORD);
    // A short price walk, a few trades a second, so the 1s chart has candles to draw.
    const walk = ['190.60', '190.90', '190.70', '191.20', '191.05', '191.40', '191.10', '190.85', '191.30', '191.60'];
    for (const [i, px] of walk.entries()) {
      const base = new Decimal(px);
      for (const [j, off] of ['-0.10', '0.15', '0'].entries()) {
        const seller = (i + j) % 3 === 2 ? restB : restA;
        const buyer = seller === restA ? restB : restA;
        const price = base.add(off).toFixed(2);
        const quantity = String(2 + ((i * 3 + j) % 7));
        // Every other trade is seller-initiated, so the tape shows both aggressor colours.
        const [maker, taker] = (i + j) % 2 === 0 ? [seller, buyer] : [buyer, seller];
        const makerSide = maker === seller ? 'sell' : 'buy';
        await maker.call<Order>('POST', '/orders', { symbol: 'AAPL', side: makerSide, type: 'limit', time_in_force: 'gtc', price, quantity });
        await taker.call<Order>('POST', '/orders', { symbol: 'AAPL', side: makerSide === 'sell' ? 'buy' : 'sell', type: 'limit', time_in_force: 'ioc', price, quantity });
      }
      await sleep(1000);
    }
    for (let i = 0; i < 8; i++) {
      await restA.call<Order>('POST', '/orders', { symbol: 'AAPL', side: 'sell', type: 'limit', time_in_force: 'gtc', price: new Decimal('191.70').add(new Decimal('0.05').mul(i)).toFixed(2), quantity: String(20 + 15 * i) });
      await restB.call<Order>('POST', '/orders', { symbol: 'AAPL', side: 'buy', type: 'limit', time_in_force: 'gtc', price: new Decimal('191.50').sub(new Decimal('0.05').mul(i)).toFixed(2), quantity: String(25 + 12 * i) });
    }
    await restB.call<Order>('POST', '/orders', { symbol: 'MSFT', side: 'buy', type: 'limit', time_in_force: 'gtc', price: '419.00', quantity: '40' });
    await restA.call<Order>('POST', '/orders', { symbol: 'MSFT', side: 'sell', type: 'market', time_in_force: 'ioc', quantity: '40' });

    const p = bob.page;
    await p.click('.chart-panel .seg button:has-text("1s")');
    await p.locator('[data-testid=book-bid][data-price="191.5"]').waitFor();
    await p.locator('[data-testid=trades] .tape-row').nth(5).waitFor();
    await p.locator('[data-testid=market-AAPL] .market-change').waitFor();
    await openTab(p, 'Fills');
    await expect.poll(() => p.locator('.toast').count(), { timeout: 20_000 }).toBe(0);
    const trading = path.join(RESULTS, 'trading.png');
    await p.screenshot({ path: trading });

    await p.click('nav >> text=Portfolio');
    await p.locator('[data-testid=position-MSFT]').waitFor();
    await sleep(6000); // a few equity samples for the curve
    const portfolio = path.join(RESULTS, 'portfolio.png');
    await p.screenshot({ path: portfolio });

    await p.click('nav >> text=Risk');
    await p.locator('[data-testid=risk-limits] tbody tr').first().waitFor();
    await p.screenshot({ path: path.join(RESULTS, 'risk.png') });
    await p.click('nav >> text=Trade');

    if (process.env.HFT_E2E_UPDATE_DOCS) {
      mkdirSync(path.join(REPO_DIR, 'docs', 'img'), { recursive: true });
      copyFileSync(trading, path.join(REPO_DIR, 'docs', 'img', 'trading.png'));
      copyFileSync(portfolio, path.join(REPO_DIR, 'docs', 'img', 'portfolio.png'));
    }
  });

  it('the kill switch halts the trader and cancels his open orders', async () => {
    const p = alice.page;
    await p.click('nav >> text=Risk');
    await p.click('button:has-text("Halt my trading")');
    await p.click('button:has-text("Yes, halt now")');
    await expect.poll(() => p.textContent('[data-testid=trading-state]')).toBe('Trading halted');
    await p.click('nav >> text=Trade');
    await p.locator('.account-strip .halted').waitFor();
    await openTab(p, 'Open orders');
    await expect.poll(() => p.locator('[data-testid=open-order]').count()).toBe(0);
  });

  it('logs out, and an expired or revoked session returns to the login screen with a message', async () => {
    const p = bob.page;
    await p.click('button:has-text("Log out")');
    await p.waitForSelector('form[aria-label="Log in"]');
    expect(await p.evaluate(() => sessionStorage.getItem('hft.session'))).toBeNull();

    const a = alice.page;
    await a.evaluate(() => {
      const s = JSON.parse(sessionStorage.getItem('hft.session') ?? '{}') as Record<string, unknown>;
      sessionStorage.setItem('hft.session', JSON.stringify({ ...s, token: 'not-a-valid-token' }));
    });
    alice.phase = 'bad-token';
    await a.reload();
    await a.waitForSelector('[data-testid=session-notice]');
    expect(await a.textContent('[data-testid=session-notice]')).toContain('expired');
  });

  it('left no console errors outside the steps that expect failing requests', () => {
    const expected = (e: { phase: string; text: string }) =>
      (['invalid-order', 'bad-token'].includes(e.phase) && /status of 4\d\d/.test(e.text)) ||
      (e.phase === 'restart' && /WebSocket|ERR_CONNECTION|Failed to load resource|status of 50\d/.test(e.text));
    const unexpected = [...alice.errors, ...bob.errors].filter((e) => !expected(e));
    expect(unexpected).toEqual([]);
  });
});
