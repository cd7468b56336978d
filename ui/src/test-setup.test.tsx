import { render, screen, waitFor } from '@testing-library/preact';
import { useEffect, useState } from 'preact/hooks';
import { expect, it, vi } from 'vitest';

function Later() {
  const [n, setN] = useState(0);
  useEffect(() => {
    if (n === 0) setTimeout(() => setN(1), 0);
  }, [n]);
  return <p>{n === 1 ? 'updated' : 'first'}</p>;
}

// The state a torn-down jsdom leaves (test-setup.ts): no animation frame
// ever comes and cancelAnimationFrame is gone. An update outside act()
// must still run its effects, and nothing may throw after the test (the
// 60 ms wait outlasts preact's 35 ms fallback timer, which without the
// setup throws "cancelAnimationFrame is not a function" here).
it('runs effects without animation frames', async () => {
  vi.stubGlobal('requestAnimationFrame', () => 0);
  vi.stubGlobal('cancelAnimationFrame', undefined);
  render(<Later />);
  await waitFor(() => expect(screen.getByText('updated')).toBeTruthy());
  await new Promise((r) => setTimeout(r, 60));
});
