import { describe, expect, it } from 'vitest';
import { downloadText, duration, type ProgressDetail } from './progress';

const MiB = 2 ** 20;
const at = '2026-01-01T12:00:00Z';
const t0 = Date.parse(at);
const d = (p: Partial<ProgressDetail>): ProgressDetail => ({ bytes_done: 0, bytes_total: 0, rate_bps: 0, eta_seconds: 0, at, ...p });

describe('download progress', () => {
  it('says bytes of the total, rate and time left', () => {
    expect(downloadText(d({ bytes_done: 420 * MiB, bytes_total: 1000 * MiB, rate_bps: 50 * MiB, eta_seconds: 12 }), t0)).toBe(
      '420 MiB of 1000 MiB · 50 MiB/s · 12 s left',
    );
  });
  it('counts the time left down from the report, never below zero', () => {
    const x = d({ bytes_done: 1, bytes_total: 2, rate_bps: 1, eta_seconds: 600 });
    expect(downloadText(x, t0 + 95_000)).toBe('1 B of 2 B · 1 B/s · 8 min 25 s left');
    expect(downloadText(x, t0 + 3_600_000)).toBe('1 B of 2 B · 1 B/s · 0 s left');
    // A clock behind the appliance's does not add time.
    expect(downloadText(x, t0 - 60_000)).toBe('1 B of 2 B · 1 B/s · 10 min left');
  });
  it('leaves out what is unknown', () => {
    expect(downloadText(d({ bytes_done: 3 * 2 ** 30, rate_bps: MiB }), t0)).toBe('3 GiB · 1 MiB/s');
    expect(downloadText(d({ bytes_total: 2 * 2 ** 30 }), t0)).toBe('0 B of 2 GiB');
    expect(downloadText(d({}), t0)).toBe('');
    expect(downloadText(undefined, t0)).toBe('');
    expect(downloadText(d({ bytes_done: 5, eta_seconds: 9, at: 'not a time' }), t0)).toBe('5 B · 9 s left');
  });
  it('shows only how far a failed download came', () => {
    expect(downloadText(d({ bytes_done: 420 * MiB, bytes_total: 1000 * MiB, rate_bps: MiB, eta_seconds: 3 }), t0, false)).toBe(
      '420 MiB of 1000 MiB downloaded',
    );
  });
  it('renders durations', () => {
    expect([0, 59.4, 60, 125, 3600, 7260, -5, Number.NaN].map(duration)).toEqual([
      '0 s', '59 s', '1 min', '2 min 5 s', '1 h', '2 h 1 min', '0 s', '0 s',
    ]);
  });
});
