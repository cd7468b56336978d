import { describe, expect, it } from 'vitest';
import {
  activeIPs,
  conflicts,
  endWarning,
  matchedRegistration,
  registrationsOf,
  sameHardware,
  shortID,
  summaryText,
  tokenState,
} from './registrations';
import { machine, registration } from '../test/fixtures';

const now = Date.parse('2026-01-01T12:00:00Z');
const until = (iso: string, failures = 0, locked = false, expired = false) => ({ expires_at: iso, failures, locked, expired });

describe('shortID and registrationsOf', () => {
  it('names a registration by the first eight characters of its key ID, as the audit log does', () => {
    expect(shortID('q3Zq0Jm7S0nM2s8yYl8yQ0b9vHq6S3hC1xJr2mR9f3E')).toBe('q3Zq0Jm7');
  });
  it('treats a missing list (null in the API) as none', () => {
    expect(registrationsOf(machine({ registrations: null }))).toEqual([]);
  });
});

describe('conflicts and activeIPs', () => {
  const a = machine({ mac_conflict: true, registrations: [registration({ ip: '10.77.0.5' }), registration({ ip: '10.77.0.9' })] });
  const b = machine({ registrations: [registration({ ip: '10.77.0.7', active: false }), registration({ ip: '10.77.0.8' })] });
  it('counts the machines the API marks', () => {
    expect(conflicts([a, b, machine()])).toBe(1);
    expect(conflicts([])).toBe(0);
  });
  it('lists only the active registrations, each address once', () => {
    expect(activeIPs(a)).toEqual(['10.77.0.5', '10.77.0.9']);
    expect(activeIPs(b)).toEqual(['10.77.0.8']);
    const same = machine({ registrations: [registration({ ip: '10.77.0.5' }), registration({ ip: '10.77.0.5' }), registration({ ip: '' })] });
    expect(activeIPs(same)).toEqual(['10.77.0.5', 'unknown address']);
  });
});

describe('tokenState', () => {
  it.each([
    ['valid', until('2026-01-01T13:00:00Z'), 'valid', /^valid until /],
    ['valid with wrong attempts', until('2026-01-01T13:00:00Z', 2), 'valid', /\(2 wrong attempts\)$/],
    ['one wrong attempt', until('2026-01-01T13:00:00Z', 1), 'valid', /\(1 wrong attempt\)$/],
    ['expired by the API', until('2026-01-01T13:00:00Z', 0, false, true), 'expired', /^expired /],
    // The page outlived the answer: the clock decides.
    ['expired since the API answered', until('2026-01-01T11:00:00Z'), 'expired', /^expired 1 h ago$/],
    ['locked wins over expired', until('2026-01-01T11:00:00Z', 5, true, true), 'locked', /^locked after 5 wrong attempts$/],
  ] as const)('%s', (_, t, state, text) => {
    const got = tokenState(t, now);
    expect(got.state).toBe(state);
    expect(got.text).toMatch(text);
  });
});

describe('summaryText', () => {
  it('says what the registration reported, in one line', () => {
    expect(
      summaryText({ vendor: 'Supermicro', model: 'SYS-1029P-WTR', serial: 'S314159', cores: 24, memory_bytes: 192 * 2 ** 30, disks: 3, disk_bytes: 4 * 2 ** 40 }),
    ).toBe('Supermicro SYS-1029P-WTR · serial S314159 · 24 cores · 192 GiB · 3 disks, 4 TiB');
    expect(summaryText({ disks: 1, disk_bytes: 8 * 2 ** 30 })).toBe('1 disk, 8 GiB');
  });
  it('is empty when nothing was reported', () => {
    expect(summaryText(undefined)).toBe('');
    expect(summaryText({})).toBe('');
  });
});

describe('sameHardware', () => {
  const s = { vendor: 'QEMU', model: 'Standard PC', serial: 'A1', memory_bytes: 2 ** 31, disks: 1, disk_bytes: 2 ** 33 };
  it.each([
    ['identical', s, { ...s }, true],
    ['another serial', s, { ...s, serial: 'B2' }, false],
    ['another disk size', s, { ...s, disk_bytes: 2 ** 34 }, false],
    ['a field missing on one side', s, { ...s, serial: undefined }, false],
    ['both missing', undefined, undefined, true],
    ['one missing', s, undefined, false],
  ] as const)('%s', (_, a, b, want) => {
    expect(sameHardware(a, b)).toBe(want);
  });
});

describe('matchedRegistration', () => {
  const genuine = registration({ ip: '10.77.0.5', summary: { vendor: 'Supermicro', serial: 'S1' } });
  const spoofer = registration({ ip: '10.77.0.66', summary: { vendor: 'QEMU', serial: 'X' } });
  // Until approval the record shows the latest registration's report: here the spoofer's.
  const m = machine({ mac_conflict: true, registrations: [genuine, spoofer], summary: { vendor: 'QEMU', serial: 'X' } });

  it('finds the registration the token matched', () => {
    expect(matchedRegistration(m, genuine.id)?.reg.ip).toBe('10.77.0.5');
  });
  it('warns when the record shows another registration’s hardware', () => {
    expect(matchedRegistration(m, genuine.id)?.differs).toBe(true);
    expect(matchedRegistration(m, spoofer.id)?.differs).toBe(false);
  });
  it('does not warn without the registration’s summary (a list answer)', () => {
    const bare = machine({ registrations: [{ ...genuine, summary: undefined }] });
    expect(matchedRegistration(bare, genuine.id)?.differs).toBe(false);
  });
  it('gives nothing for an unknown or missing ID', () => {
    expect(matchedRegistration(m, 'nope')).toBeUndefined();
    expect(matchedRegistration(m, undefined)).toBeUndefined();
  });
});

describe('endWarning', () => {
  const m = machine({ hostname: 'node-7' });
  it('names the registration and what ending it does', () => {
    const r = registration({ id: 'abcdefgh1234', ip: '10.77.0.66' });
    expect(endWarning(m, r)).toMatch(/^End registration abcdefgh from 10\.77\.0\.66\? Its agent can make no further call\./);
  });
  it('warns that ending the bound registration strands the machine', () => {
    const r = registration({ id: 'abcdefgh1234', bound: true });
    expect(endWarning(m, r)).toContain('Approval bound node-7 to it');
    expect(endWarning(m, r)).toContain('rediscover it');
  });
});
