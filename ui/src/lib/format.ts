// Formatting helpers shared by the pages. They never throw on odd input:
// the values come from the network.

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** bytes renders a byte count in binary units: 8589934592 → "8 GiB". */
export function bytes(n: number | undefined | null): string {
  if (n == null || !Number.isFinite(n) || n < 0) return '—';
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const s = v >= 100 || Number.isInteger(v) ? v.toFixed(0) : v.toFixed(1);
  return `${s} ${units[i]}`;
}

/** Relative time such as "3 min ago" or "in 2 h"; "—" for no time. */
export function relTime(iso: string | undefined | null, now: number = Date.now()): string {
  if (!iso) return '—';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '—';
  const d = Math.round((t - now) / 1000);
  const a = Math.abs(d);
  let s: string;
  if (a < 45) s = `${a} s`;
  else if (a < 45 * 60) s = `${Math.round(a / 60)} min`;
  else if (a < 36 * 3600) s = `${Math.round(a / 3600)} h`;
  else s = `${Math.round(a / 86400)} d`;
  return d <= 0 ? `${s} ago` : `in ${s}`;
}

/** Absolute local time for titles and tables. */
export function absTime(iso: string | undefined | null): string {
  if (!iso) return '—';
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? '—' : t.toLocaleString();
}

/** Mbit/s → "1 Gbit/s", "100 Mbit/s"; 0 or missing is unknown. */
export function speed(mbps: number | undefined): string {
  if (!mbps || mbps <= 0) return 'unknown speed';
  return mbps >= 1000 ? `${mbps / 1000} Gbit/s` : `${mbps} Mbit/s`;
}
