import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, createWriteStream, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// A real platform for the browser tests: the engine and the backend as separate processes
// on free ports (each binds port 0 and prints the port it got), SQLite and the journal in
// a fresh temp dir, the built UI served by the backend. Logs go to files in that dir and
// are printed when a start fails.

const here = path.dirname(fileURLToPath(import.meta.url));
export const WEB_DIR = path.resolve(here, '..');
export const REPO_DIR = path.resolve(WEB_DIR, '..');
export const HFT_BIN = process.env.HFT_BIN ? path.resolve(process.env.HFT_BIN) : path.resolve(REPO_DIR, '.venv/bin/hft');
const START_TIMEOUT_MS = 60_000;

interface Proc {
  child: ChildProcess;
  log: WriteStream;
  logPath: string;
}

function startProcess(args: string[], logPath: string, ready: RegExp): Promise<{ proc: Proc; match: RegExpMatchArray }> {
  return new Promise((resolve, reject) => {
    const log = createWriteStream(logPath, { flags: 'a' });
    const child = spawn(HFT_BIN, args, {
      cwd: REPO_DIR,
      env: { ...process.env, PYTHONUNBUFFERED: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffer = '';
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      child.kill('SIGKILL');
      reject(new Error(`${args[0]} did not start within ${START_TIMEOUT_MS} ms; output:\n${buffer.slice(-4000)}`));
    }, START_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      log.write(chunk);
      if (done) return;
      buffer += chunk.toString();
      const m = buffer.match(ready);
      if (m) {
        done = true;
        clearTimeout(timer);
        resolve({ proc: { child, log, logPath }, match: m });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('exit', (code, signal) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`${args[0]} exited (${code ?? signal}) before it was ready; output:\n${buffer.slice(-4000)}`));
    });
  });
}

function stopProcess(proc: Proc | null, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<void> {
  if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) {
    proc?.log.end();
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
    proc.child.once('exit', () => {
      clearTimeout(timer);
      proc.log.end();
      resolve();
    });
    proc.child.kill(signal);
  });
}

export class Stack {
  readonly dir: string;
  private engine: Proc | null = null;
  private api: Proc | null = null;
  enginePort = 0;
  apiPort = 0;

  constructor() {
    this.dir = mkdtempSync(path.join(tmpdir(), 'hft-web-e2e-'));
  }

  get baseURL(): string {
    return `http://127.0.0.1:${this.apiPort}`;
  }

  async start(): Promise<void> {
    if (!existsSync(HFT_BIN)) throw new Error(`hft not found at ${HFT_BIN} (set HFT_BIN)`);
    if (!existsSync(path.join(WEB_DIR, 'dist', 'index.html'))) throw new Error('web/dist is missing: run `npm run build` first');
    const { proc, match } = await startProcess(
      ['engine', '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--data-dir', path.join(this.dir, 'engine'), '--fsync', 'none'],
      path.join(this.dir, 'engine.log'),
      /engine listening on [^\s:]+:(\d+)/,
    );
    this.engine = proc;
    this.enginePort = Number(match[1]);
    await this.startApi(0);
  }

  private async startApi(port: number): Promise<void> {
    const { proc, match } = await startProcess(
      [
        'api',
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--engine-address',
        `127.0.0.1:${this.enginePort}`,
        '--data-dir',
        path.join(this.dir, 'api'),
        '--web-dir',
        path.join(WEB_DIR, 'dist'),
        '--log-level',
        'warning',
      ],
      path.join(this.dir, 'api.log'),
      /api listening on http:\/\/[^\s:]+:(\d+)/,
    );
    this.api = proc;
    this.apiPort = Number(match[1]);
  }

  /** Stops the backend (SIGTERM), waits `downMs`, and starts it again on the same port. */
  async restartApi(downMs = 1500): Promise<void> {
    await stopProcess(this.api);
    this.api = null;
    await new Promise((r) => setTimeout(r, downMs));
    await this.startApi(this.apiPort);
  }

  async stop(): Promise<void> {
    await stopProcess(this.api);
    await stopProcess(this.engine);
    this.api = null;
    this.engine = null;
    if (!process.env.HFT_E2E_KEEP) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A small REST helper for seeding and checking from the test (not through the browser). */
export class Rest {
  token: string | null = null;
  constructor(readonly baseURL: string) {}

  async login(username: string, password: string): Promise<void> {
    const res = await fetch(`${this.baseURL}/api/v1/auth/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username, password }),
    });
    if (!res.ok) throw new Error(`login failed: ${res.status} ${await res.text()}`);
    this.token = ((await res.json()) as { access_token: string }).access_token;
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.baseURL}/api/v1${path}`, {
      method,
      headers: {
        ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}),
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return (text ? JSON.parse(text) : null) as T;
  }
}
