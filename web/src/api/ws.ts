import type { WsMessage } from './types';

// One WebSocket per tab, shared by every panel. It reconnects by itself with capped
// exponential backoff, re-sends `auth` and every live subscription after each reconnect,
// and tells subscribers to drop their state (onReset) so nothing stale is shown while
// a fresh snapshot is on its way.

export type WsStatus = 'connecting' | 'live' | 'reconnecting' | 'offline';

export interface ChannelHandler {
  onMessage: (msg: WsMessage) => void;
  /** Called when the stream restarts (reconnect or resubscribe): forget derived state. */
  onReset?: () => void;
}

type SocketFactory = (url: string) => WebSocket;

// readyState values, spelled out so the class also runs where WebSocket is not global.
const CONNECTING = 0;
const OPEN = 1;
const HEARTBEAT_MS = 15_000;
const SILENCE_MS = 40_000;
const BACKOFF_MIN_MS = 300;
const BACKOFF_MAX_MS = 5_000;

export class WsClient {
  private readonly url: string;
  private readonly factory: SocketFactory;
  private socket: WebSocket | null = null;
  private token: string | null = null;
  private readonly handlers = new Map<string, Set<ChannelHandler>>();
  private readonly statusListeners = new Set<(s: WsStatus) => void>();
  private readonly errorListeners = new Set<(message: string) => void>();
  private statusValue: WsStatus = 'offline';
  private attempts = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  private lastMessageAt = 0;
  private running = false;

  constructor(url: string, factory: SocketFactory = (u) => new WebSocket(u)) {
    this.url = url;
    this.factory = factory;
  }

  get status(): WsStatus {
    return this.statusValue;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.connect();
  }

  stop(): void {
    this.running = false;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.stopHeartbeat();
    const s = this.socket;
    this.socket = null;
    if (s) {
      s.onclose = null;
      s.onmessage = null;
      s.onerror = null;
      s.onopen = null;
      if (s.readyState === OPEN || s.readyState === CONNECTING) s.close(1000, 'client stop');
    }
    this.setStatus('offline');
  }

  /** Sets (or clears) the token for private channels; re-authenticates a live socket. */
  setToken(token: string | null): void {
    const changed = token !== this.token;
    this.token = token;
    if (!changed || !this.isOpen()) return;
    if (token) {
      this.send({ op: 'auth', token });
      const priv = [...this.handlers.keys()].filter(isPrivate);
      if (priv.length) this.send({ op: 'subscribe', channels: priv });
    } else {
      // Dropping the private stream server-side needs a fresh connection.
      this.socket?.close(1000, 'logout');
    }
  }

  /** Subscribes to a channel; returns the unsubscribe function. */
  subscribe(channel: string, handler: ChannelHandler): () => void {
    let set = this.handlers.get(channel);
    const isNew = !set;
    if (!set) {
      set = new Set();
      this.handlers.set(channel, set);
    }
    set.add(handler);
    if (isNew && this.isOpen() && (!isPrivate(channel) || this.token)) {
      this.send({ op: 'subscribe', channels: [channel] });
    }
    return () => {
      const s = this.handlers.get(channel);
      if (!s) return;
      s.delete(handler);
      if (s.size === 0) {
        this.handlers.delete(channel);
        if (this.isOpen()) this.send({ op: 'unsubscribe', channels: [channel] });
      }
    };
  }

  /** Restarts one channel's stream (e.g. after a book sequence gap). */
  resubscribe(channel: string): void {
    for (const h of this.handlers.get(channel) ?? []) h.onReset?.();
    if (!this.isOpen()) return;
    this.send({ op: 'unsubscribe', channels: [channel] });
    this.send({ op: 'subscribe', channels: [channel] });
  }

  onStatus(listener: (s: WsStatus) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  onError(listener: (message: string) => void): () => void {
    this.errorListeners.add(listener);
    return () => this.errorListeners.delete(listener);
  }

  private isOpen(): boolean {
    return this.socket !== null && this.socket.readyState === OPEN;
  }

  private send(msg: object): void {
    if (this.socket && this.socket.readyState === OPEN) this.socket.send(JSON.stringify(msg));
  }

  private setStatus(s: WsStatus): void {
    if (s === this.statusValue) return;
    this.statusValue = s;
    for (const l of this.statusListeners) l(s);
  }

  private connect(): void {
    if (!this.running) return;
    this.setStatus(this.attempts === 0 ? 'connecting' : 'reconnecting');
    let socket: WebSocket;
    try {
      socket = this.factory(this.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      this.attempts = 0;
      this.lastMessageAt = Date.now();
      if (this.token) this.send({ op: 'auth', token: this.token });
      const channels = [...this.handlers.keys()].filter((c) => !isPrivate(c) || this.token);
      for (const c of channels) for (const h of this.handlers.get(c) ?? []) h.onReset?.();
      if (channels.length) this.send({ op: 'subscribe', channels });
      this.startHeartbeat();
      this.setStatus('live');
    };
    socket.onmessage = (ev: MessageEvent) => {
      this.lastMessageAt = Date.now();
      let msg: WsMessage;
      try {
        msg = JSON.parse(String(ev.data)) as WsMessage;
      } catch {
        return;
      }
      this.dispatch(msg);
    };
    socket.onerror = () => {
      // onclose follows and schedules the reconnect.
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.stopHeartbeat();
      this.scheduleReconnect();
    };
  }

  private dispatch(msg: WsMessage): void {
    if (msg.channel) {
      for (const h of this.handlers.get(msg.channel) ?? []) h.onMessage(msg);
      return;
    }
    const isError = msg.type === 'error' || msg.error !== undefined;
    if (isError) {
      const e = msg.error;
      const text = typeof e === 'string' ? e : e?.message ?? 'WebSocket error';
      for (const l of this.errorListeners) l(text);
    }
  }

  private scheduleReconnect(): void {
    if (!this.running) return;
    this.setStatus('reconnecting');
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempts) * (0.75 + Math.random() * 0.5);
    this.attempts += 1;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    this.heartbeatTimer = setInterval(() => {
      if (Date.now() - this.lastMessageAt > SILENCE_MS) {
        // A half-open connection never fires onclose; force the reconnect path.
        this.socket?.close(4000, 'heartbeat timeout');
        return;
      }
      this.send({ op: 'ping' });
    }, HEARTBEAT_MS);
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }
}

const PRIVATE = new Set(['orders', 'fills', 'account']);

export function isPrivate(channel: string): boolean {
  return PRIVATE.has(channel);
}

export function defaultWsUrl(): string {
  const proto = window.location.protocol === 'https:' ? 'wss' : 'ws';
  return `${proto}://${window.location.host}/api/v1/ws`;
}
