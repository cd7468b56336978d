// An image download's figures (bytes, rate, time left) as the agent last
// reported them, in words for the machine list and page. Pure: the values
// come from the network and never make it throw.
import type { Machine } from '../api/types';
import { bytes } from './format';

export type ProgressDetail = NonNullable<Machine['progress_detail']>;

/** duration renders seconds as "45 s", "3 min 5 s" or "2 h 10 min". */
export function duration(sec: number): string {
  const s = Number.isFinite(sec) ? Math.max(0, Math.round(sec)) : 0;
  if (s < 60) return `${s} s`;
  if (s < 3600) {
    const m = Math.floor(s / 60);
    const r = s % 60;
    return r ? `${m} min ${r} s` : `${m} min`;
  }
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return m ? `${h} h ${m} min` : `${h} h`;
}

/**
 * downloadText is "420 MiB of 1000 MiB · 50 MiB/s · 12 s left", or "" when
 * the report had no figures. The time left counts down from the report to
 * now. A download that is not live (the install failed) shows only how
 * far it came.
 */
export function downloadText(d: ProgressDetail | undefined | null, now: number = Date.now(), live = true): string {
  if (!d) return '';
  const done = d.bytes_done > 0 ? d.bytes_done : 0;
  const total = d.bytes_total > 0 ? d.bytes_total : 0;
  if (!done && !total) return '';
  const parts = [total ? `${bytes(done)} of ${bytes(total)}` : bytes(done)];
  if (!live) return `${parts[0]} downloaded`;
  if (d.rate_bps > 0) parts.push(`${bytes(d.rate_bps)}/s`);
  if (d.eta_seconds > 0) {
    const at = Date.parse(d.at);
    const gone = Number.isNaN(at) ? 0 : Math.max(0, (now - at) / 1000);
    parts.push(`${duration(d.eta_seconds - gone)} left`);
  }
  return parts.join(' · ');
}
