import { useCallback, useEffect, useState } from 'react';

// A tiny history-based router: the app has four screens, so a routing library would add
// more than it saves. The backend serves index.html for every unknown path.

export type Route =
  | { name: 'trade'; symbol: string | null }
  | { name: 'portfolio' }
  | { name: 'risk' }
  | { name: 'login' }
  | { name: 'signup' };

export function parseRoute(pathname: string): Route {
  const parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  switch (parts[0]) {
    case 'portfolio':
      return { name: 'portfolio' };
    case 'risk':
      return { name: 'risk' };
    case 'login':
      return { name: 'login' };
    case 'signup':
      return { name: 'signup' };
    case 'trade':
      return { name: 'trade', symbol: parts[1] ?? null };
    default:
      return { name: 'trade', symbol: null };
  }
}

export function routePath(route: Route): string {
  switch (route.name) {
    case 'trade':
      return route.symbol ? `/trade/${encodeURIComponent(route.symbol)}` : '/trade';
    default:
      return `/${route.name}`;
  }
}

export function useRoute(): [Route, (r: Route, replace?: boolean) => void] {
  const [route, setRoute] = useState<Route>(() => parseRoute(window.location.pathname));
  useEffect(() => {
    const onPop = () => setRoute(parseRoute(window.location.pathname));
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);
  const navigate = useCallback((r: Route, replace = false) => {
    const path = routePath(r);
    if (path !== window.location.pathname) {
      if (replace) window.history.replaceState(null, '', path);
      else window.history.pushState(null, '', path);
    }
    setRoute(r);
  }, []);
  return [route, navigate];
}
