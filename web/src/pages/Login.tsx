import { useState, type FormEvent } from 'react';
import { ApiError } from '../api/client';
import { useSession } from '../session';

export function LoginPage({ mode, onSwitch }: { mode: 'login' | 'signup'; onSwitch: (m: 'login' | 'signup') => void }) {
  const { login, register, notice } = useSession();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (ev: FormEvent) => {
    ev.preventDefault();
    setError(null);
    if (!username.trim() || !password) {
      setError('Enter a username and a password');
      return;
    }
    if (mode === 'signup' && password !== confirm) {
      setError('The passwords do not match');
      return;
    }
    setBusy(true);
    try {
      if (mode === 'signup') await register(username.trim(), password);
      else await login(username.trim(), password);
    } catch (e) {
      if (e instanceof ApiError) {
        setError(e.status === 401 ? 'Wrong username or password' : e.message);
      } else setError(String(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="auth-page">
      <form className="auth-card" onSubmit={submit} aria-label={mode === 'signup' ? 'Sign up' : 'Log in'}>
        <div className="brand big">
          <span className="logo" aria-hidden="true" />
          HFT Terminal
        </div>
        <h1>{mode === 'signup' ? 'Create your account' : 'Log in'}</h1>
        {notice && (
          <div className="notice" role="status" data-testid="session-notice">
            {notice}
          </div>
        )}
        <label className="field">
          <span>Username</span>
          <input name="username" autoComplete="username" autoFocus value={username} onChange={(e) => setUsername(e.target.value)} />
        </label>
        <label className="field">
          <span>Password</span>
          <input
            name="password"
            type="password"
            autoComplete={mode === 'signup' ? 'new-password' : 'current-password'}
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        {mode === 'signup' && (
          <label className="field">
            <span>Confirm password</span>
            <input name="confirm" type="password" autoComplete="new-password" value={confirm} onChange={(e) => setConfirm(e.target.value)} />
          </label>
        )}
        {error && (
          <div className="api-error" role="alert">
            {error}
          </div>
        )}
        <button type="submit" className="submit primary" disabled={busy}>
          {busy ? 'Please wait…' : mode === 'signup' ? 'Sign up' : 'Log in'}
        </button>
        <p className="muted small">
          {mode === 'signup' ? 'Already have an account? ' : 'New here? '}
          <a
            href={mode === 'signup' ? '/login' : '/signup'}
            onClick={(e) => {
              e.preventDefault();
              setError(null);
              onSwitch(mode === 'signup' ? 'login' : 'signup');
            }}
          >
            {mode === 'signup' ? 'Log in' : 'Create an account'}
          </a>
        </p>
      </form>
    </main>
  );
}
