// The approval wizard's rules on the browser side. They catch typing
// mistakes before a request (a mistyped token counts as a failed attempt on
// the appliance, so a token that cannot be one is never sent); the API
// checks everything again and its answer is mapped back onto the fields.
import type { ApproveRequest } from '../api/types';
import { fieldErrors, type Problem } from '../api/problem';

export type NetworkMode = 'dhcp' | 'static';

/** The wizard's form, as typed. */
export interface ApprovalForm {
  token: string;
  cluster: string;
  /** '' means the cluster's default profile. */
  profile: string;
  hostname: string;
  disk: string;
  /** authorized_keys lines, one per line; blank lines and # comments ignored. */
  sshKeys: string;
  mode: NetworkMode;
  address: string;
  gateway: string;
  dns: string;
  /** Have the discovery OS create a BMC user for the appliance (bmc_user). */
  bmcUser?: boolean;
}

export const emptyForm: ApprovalForm = {
  token: '', cluster: '', profile: '', hostname: '', disk: '', sshKeys: '',
  mode: 'dhcp', address: '', gateway: '', dns: '',
};

/** Field keys; the API's locations map onto the same names (fieldOf). */
export const FIELDS = [
  'token', 'cluster', 'profile', 'hostname', 'disk', 'ssh_keys',
  'network.mode', 'network.address', 'network.gateway', 'network.dns', 'network', 'bmc_user',
] as const;
export type Field = (typeof FIELDS)[number];
export type Errors = Partial<Record<Field, string>>;

/** The wizard's steps, in order. */
export const STEPS = ['token', 'review', 'settings', 'confirm'] as const;
export type Step = (typeof STEPS)[number];

/** stepOf is the step on which a field is edited. */
export function stepOf(f: string): Step {
  return f === 'token' || f === 'cluster' ? 'token' : 'settings';
}

const tokenRe = /^FOUNDRY-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$/;

/**
 * normalizeToken accepts what people type off a console: any case, spaces,
 * missing dashes, the prefix or not. It returns the canonical
 * FOUNDRY-XXXX-XXXX-XXXX or undefined when the text cannot be a token.
 */
export function normalizeToken(s: string): string | undefined {
  let t = s.toUpperCase().replace(/[\s-]/g, '');
  if (t.startsWith('FOUNDRY')) t = t.slice(7);
  if (!/^[A-Z2-7]{12}$/.test(t)) return undefined;
  const out = `FOUNDRY-${t.slice(0, 4)}-${t.slice(4, 8)}-${t.slice(8)}`;
  return tokenRe.test(out) ? out : undefined;
}

/**
 * lowerHostname lower-cases ASCII letters only, as the API does: String's
 * toLowerCase would turn the Kelvin sign (U+212A) into a k and send a name
 * the administrator did not type.
 */
export function lowerHostname(h: string): string {
  return h.trim().replace(/[A-Z]+/g, (c) => c.toLowerCase());
}

/**
 * hostnameError checks RFC 1123 as the API does (Go's names.Hostname; its
 * verdicts on tricky names are in hostnames.json, which the tests hold this
 * to); '' means fine.
 */
export function hostnameError(h: string): string {
  const s = lowerHostname(h);
  if (!s) return 'a host name is required';
  if (s.length > 253) return 'longer than 253 characters';
  for (const label of s.split('.')) {
    if (!label || label.length > 63) return 'each dot-separated label needs 1–63 characters';
    if (label.startsWith('-') || label.endsWith('-')) return "a label cannot start or end with '-'";
    const bad = label.match(/[^a-z0-9-]/);
    if (bad) return `character "${bad[0]}" is not a letter, digit or '-'`;
  }
  return '';
}

/** sshKeyLines splits the text area into authorized_keys lines. */
export function sshKeyLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

// A key line: optional options, a key type, base64 data, optional comment.
const keyTypes = '(?:ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-nistp(?:256|384|521)|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\\.com)';
const keyRe = new RegExp(`(?:^|\\s)${keyTypes}\\s+[A-Za-z0-9+/]+={0,2}(?:\\s|$)`);

/** sshKeysError names the first line that is not an authorized_keys line. */
export function sshKeysError(text: string): string {
  const lines = sshKeyLines(text);
  for (let i = 0; i < lines.length; i++) {
    if (!keyRe.test(lines[i]!)) return `line ${i + 1} is not an authorized_keys line (e.g. "ssh-ed25519 AAAA… user@host")`;
  }
  return '';
}

/** parseIPv4 returns the address as a number, or undefined. */
export function parseIPv4(s: string): number | undefined {
  const m = s.trim().match(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/);
  if (!m) return undefined;
  let v = 0;
  for (const part of m.slice(1)) {
    if (part.length > 1 && part.startsWith('0')) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    v = v * 256 + n;
  }
  return v;
}

const isIPv6 = (s: string) => /^[0-9a-fA-F:]+$/.test(s) && s.includes(':');

/** parseCIDR parses "10.77.0.50/24" (IPv4). */
export function parseCIDR(s: string): { addr: number; bits: number } | undefined {
  const [a, b, extra] = s.trim().split('/');
  if (extra !== undefined || a === undefined || b === undefined || !/^\d{1,2}$/.test(b)) return undefined;
  const addr = parseIPv4(a);
  const bits = Number(b);
  if (addr === undefined || bits > 32) return undefined;
  return { addr, bits };
}

function inPrefix(addr: number, net: { addr: number; bits: number }): boolean {
  if (net.bits === 0) return true;
  const size = 2 ** (32 - net.bits);
  return Math.floor(addr / size) === Math.floor(net.addr / size);
}

/**
 * validate checks the fields of one step (or all steps when step is
 * omitted). subnet is the machine's segment subnet when the appliance
 * knows it, so a static address outside it is caught here already.
 */
export function validate(f: ApprovalForm, step?: Step, subnet?: string): Errors {
  const e: Errors = {};
  const want = (s: Step) => step === undefined || step === s;
  if (want('token')) {
    if (!f.token.trim()) e.token = "type the token shown on the machine's console";
    else if (!normalizeToken(f.token)) e.token = 'not a token like FOUNDRY-ABCD-EFGH-JKLM';
    if (!f.cluster) e.cluster = 'choose a cluster: a machine never exists without one';
  }
  if (want('settings')) {
    const h = hostnameError(f.hostname);
    if (h) e.hostname = h;
    const k = sshKeysError(f.sshKeys);
    if (k) e.ssh_keys = k;
    if (f.mode === 'static') {
      const p = parseCIDR(f.address);
      const net = subnet ? parseCIDR(subnet) : undefined;
      if (!f.address.trim()) e['network.address'] = 'an address with prefix length, e.g. 10.77.0.50/24';
      else if (!p) e['network.address'] = 'not an address/prefix like 10.77.0.50/24';
      else if (net && !inPrefix(p.addr, net)) e['network.address'] = `outside the segment's subnet ${subnet}`;
      if (f.gateway.trim()) {
        const g = parseIPv4(f.gateway);
        if (g === undefined) e['network.gateway'] = 'not an IPv4 address';
        else if (p && !inPrefix(g, p)) e['network.gateway'] = 'the gateway must be inside the machine\'s prefix';
        else if (p && g === p.addr) e['network.gateway'] = "the gateway cannot be the machine's own address";
      }
    }
    const bad = splitList(f.dns).find((d) => parseIPv4(d) === undefined && !isIPv6(d));
    if (bad) e['network.dns'] = `"${bad}" is not an IP address`;
  }
  return e;
}

function splitList(s: string): string[] {
  return s.split(/[\s,]+/).filter(Boolean);
}

/** toRequest builds the API body from a validated form. */
export function toRequest(f: ApprovalForm): ApproveRequest {
  const req: ApproveRequest = {
    token: normalizeToken(f.token) ?? f.token.trim(),
    cluster: f.cluster,
    hostname: lowerHostname(f.hostname),
  };
  if (f.profile) req.profile = f.profile;
  if (f.disk) req.disk = f.disk;
  const keys = sshKeyLines(f.sshKeys);
  if (keys.length) req.ssh_keys = keys;
  const dns = splitList(f.dns);
  if (f.mode === 'static') {
    req.network = { mode: 'static', address: f.address.trim() };
    if (f.gateway.trim()) req.network.gateway = f.gateway.trim();
    if (dns.length) req.network.dns = dns;
  } else if (dns.length) {
    req.network = { mode: 'dhcp', dns };
  }
  if (f.bmcUser) req.bmc_user = true;
  return req;
}

/**
 * problemErrors maps an API refusal onto the wizard: field messages, the
 * step to show (the first step with an error) and what belongs to no field.
 */
export function problemErrors(p: Problem): { errors: Errors; step: Step; general: string[] } {
  const { byField, general } = fieldErrors(p, FIELDS);
  const errors = byField as Errors;
  // "network" alone (e.g. an error on the whole object) is shown on the mode.
  if (errors.network) {
    errors['network.mode'] = errors['network.mode'] ?? errors.network;
    delete errors.network;
  }
  const fields = Object.keys(errors);
  const step = fields.some((f) => stepOf(f) === 'token') ? 'token' : fields.length ? 'settings' : 'confirm';
  return { errors, step, general };
}
