import { createContext, useCallback, useContext, useMemo, useRef, useState, type ReactNode } from 'react';

export type ToastKind = 'fill' | 'reject' | 'error' | 'info';

interface Toast {
  id: number;
  kind: ToastKind;
  title: string;
  body?: string;
}

interface ToastApi {
  push: (kind: ToastKind, title: string, body?: string, key?: string) => void;
}

const ToastContext = createContext<ToastApi | null>(null);
const TTL_MS = 6_000;
const MAX_VISIBLE = 5;

export function ToastProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const nextId = useRef(1);
  // The same fill or reject can arrive from a REST response and from the WebSocket.
  const seen = useRef(new Set<string>());

  const dismiss = useCallback((id: number) => setToasts((t) => t.filter((x) => x.id !== id)), []);

  const push = useCallback(
    (kind: ToastKind, title: string, body?: string, key?: string) => {
      if (key) {
        if (seen.current.has(key)) return;
        seen.current.add(key);
        if (seen.current.size > 2000) seen.current.clear();
      }
      const id = nextId.current++;
      setToasts((t) => [...t.slice(-(MAX_VISIBLE - 1)), { id, kind, title, body }]);
      setTimeout(() => dismiss(id), TTL_MS);
    },
    [dismiss],
  );

  const api = useMemo(() => ({ push }), [push]);
  return (
    <ToastContext.Provider value={api}>
      {children}
      <div className="toasts" role="status" aria-live="polite">
        {toasts.map((t) => (
          <div key={t.id} className={`toast toast-${t.kind}`} data-testid={`toast-${t.kind}`}>
            <div className="toast-title">{t.title}</div>
            {t.body && <div className="toast-body">{t.body}</div>}
            <button type="button" className="toast-close" aria-label="Dismiss" onClick={() => dismiss(t.id)}>
              ×
            </button>
          </div>
        ))}
      </div>
    </ToastContext.Provider>
  );
}

export function useToasts(): ToastApi {
  const t = useContext(ToastContext);
  if (!t) throw new Error('useToasts outside ToastProvider');
  return t;
}
