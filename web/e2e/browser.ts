import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

// Debian's chromium, never a browser downloaded by a test tool.
export const CHROMIUM = process.env.HFT_CHROMIUM ?? '/usr/bin/chromium';

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export interface ConsoleEntry {
  page: string;
  text: string;
  phase: string;
}

/** A page that records console errors and uncaught exceptions, tagged with the test's phase. */
export class WatchedPage {
  readonly errors: ConsoleEntry[] = [];
  phase = 'start';
  constructor(
    readonly name: string,
    readonly context: BrowserContext,
    readonly page: Page,
  ) {
    page.on('console', (msg) => {
      if (msg.type() === 'error') this.errors.push({ page: name, text: msg.text(), phase: this.phase });
    });
    page.on('pageerror', (err) => this.errors.push({ page: name, text: `uncaught: ${err.message}`, phase: this.phase }));
  }
}

export async function newWatchedPage(browser: Browser, name: string, baseURL: string): Promise<WatchedPage> {
  const context = await browser.newContext({ baseURL, viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  return new WatchedPage(name, context, page);
}
