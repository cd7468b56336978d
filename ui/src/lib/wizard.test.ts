import { describe, expect, it } from 'vitest';
import { emptyForm, hostnameError, normalizeToken, problemErrors, sshKeysError, toRequest, validate, type ApprovalForm } from './wizard';
import hostnames from './hostnames.json';

const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGt6ZmZ5b3VyLWtleS1oZXJlLXBsZWFzZS1yZXBsYWNl admin@example';

describe('normalizeToken', () => {
  it.each([
    ['FOUNDRY-ABCD-EFGH-JK23', 'FOUNDRY-ABCD-EFGH-JK23'],
    ['foundry-abcd-efgh-jk23', 'FOUNDRY-ABCD-EFGH-JK23'],
    [' FOUNDRY ABCD EFGH JK23 ', 'FOUNDRY-ABCD-EFGH-JK23'],
    ['abcdefghjk23', 'FOUNDRY-ABCD-EFGH-JK23'],
    ['ABCD-EFGH-JK23', 'FOUNDRY-ABCD-EFGH-JK23'],
    ['FOUNDRY-ABCD-EFGH-JK2', undefined], // too short
    ['FOUNDRY-ABCD-EFGH-JK230', undefined], // too long
    ['FOUNDRY-ABCD-EFGH-JK01', undefined], // 0 and 1 are not base32
    ['', undefined],
  ])('%j → %j', (in_, want) => {
    expect(normalizeToken(in_)).toBe(want);
  });
});

describe('hostnameError', () => {
  it.each([
    ['node-01', ''],
    ['Node-01.rack1.example', ''],
    ['a'.repeat(63), ''],
    ['', 'a host name is required'],
    ['-node', "a label cannot start or end with '-'"],
    ['node-', "a label cannot start or end with '-'"],
    ['node..x', 'each dot-separated label needs 1–63 characters'],
    ['a'.repeat(64), 'each dot-separated label needs 1–63 characters'],
    ['node_01', 'character "_" is not a letter, digit or \'-\''],
    ['node;reboot', 'character ";" is not a letter, digit or \'-\''],
    [`${'a.'.repeat(127)}ab`, 'longer than 253 characters'],
  ])('%j', (h, want) => {
    expect(hostnameError(h)).toBe(want);
  });
});

describe('hostnameError agrees with the API', () => {
  // Generated from Go's names.Hostname (go test ./names -update).
  it.each(hostnames)('$name', ({ name, ok }) => {
    expect(hostnameError(name) === '').toBe(ok);
  });
});

describe('sshKeysError', () => {
  it.each([
    ['', ''],
    [key, ''],
    [`# a comment\n\n${key}\n`, ''],
    [`from="10.0.0.0/8" ${key}`, ''],
    ['ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY= x', ''],
    ['ssh-ed25519', 'line 1 is not an authorized_keys line (e.g. "ssh-ed25519 AAAA… user@host")'],
    [`${key}\nnot a key`, 'line 2 is not an authorized_keys line (e.g. "ssh-ed25519 AAAA… user@host")'],
  ])('%j', (text, want) => {
    expect(sshKeysError(text)).toBe(want);
  });
});

describe('validate', () => {
  const good: ApprovalForm = { ...emptyForm, token: 'FOUNDRY-ABCD-EFGH-JK23', cluster: 'rack1', hostname: 'node-01' };
  it.each<[string, Partial<ApprovalForm>, string | undefined, Record<string, string>]>([
    ['a good DHCP form', {}, undefined, {}],
    ['no token', { token: '' }, undefined, { token: "type the token shown on the machine's console" }],
    ['a malformed token', { token: 'FOUNDRY-1234' }, undefined, { token: 'not a token like FOUNDRY-ABCD-EFGH-JKLM' }],
    ['no cluster', { cluster: '' }, undefined, { cluster: 'choose a cluster: a machine never exists without one' }],
    ['bad host name', { hostname: 'x_y' }, undefined, { hostname: 'character "_" is not a letter, digit or \'-\'' }],
    ['static without address', { mode: 'static' }, undefined, { 'network.address': 'an address with prefix length, e.g. 10.77.0.50/24' }],
    ['static without prefix', { mode: 'static', address: '10.77.0.50' }, undefined, { 'network.address': 'not an address/prefix like 10.77.0.50/24' }],
    ['static with bad octet', { mode: 'static', address: '10.77.0.256/24' }, undefined, { 'network.address': 'not an address/prefix like 10.77.0.50/24' }],
    ['static outside the segment', { mode: 'static', address: '10.78.0.5/24' }, '10.77.0.0/24', { 'network.address': "outside the segment's subnet 10.77.0.0/24" }],
    ['static inside the segment', { mode: 'static', address: '10.77.0.50/24', gateway: '10.77.0.1' }, '10.77.0.0/24', {}],
    ['gateway off-link', { mode: 'static', address: '10.77.0.50/24', gateway: '10.9.0.1' }, undefined, { 'network.gateway': "the gateway must be inside the machine's prefix" }],
    ['gateway is the machine', { mode: 'static', address: '10.77.0.50/24', gateway: '10.77.0.50' }, undefined, { 'network.gateway': "the gateway cannot be the machine's own address" }],
    ['bad DNS', { dns: '10.77.0.1, dns.example' }, undefined, { 'network.dns': '"dns.example" is not an IP address' }],
  ])('%s', (_, change, subnet, want) => {
    expect(validate({ ...good, ...change }, undefined, subnet)).toEqual(want);
  });

  it('checks only the fields of the given step', () => {
    const f = { ...emptyForm, hostname: 'x_y' };
    expect(Object.keys(validate(f, 'token')).sort()).toEqual(['cluster', 'token']);
    expect(Object.keys(validate(f, 'settings'))).toEqual(['hostname']);
  });
});

describe('toRequest', () => {
  it('normalises and leaves out what was not chosen', () => {
    expect(toRequest({ ...emptyForm, token: 'foundry abcd efgh jk23', cluster: 'rack1', hostname: ' Node-01 ' })).toEqual({
      token: 'FOUNDRY-ABCD-EFGH-JK23', cluster: 'rack1', hostname: 'node-01',
    });
  });
  it('carries static network, keys, disk and profile', () => {
    expect(
      toRequest({
        ...emptyForm, token: 'ABCDEFGHJK23', cluster: 'c', hostname: 'h', profile: 'p', disk: '/dev/disk/by-path/x',
        sshKeys: `${key}\n# old\n`, mode: 'static', address: '10.77.0.5/24', gateway: '10.77.0.1', dns: '10.77.0.1 1.1.1.1',
      }),
    ).toEqual({
      token: 'FOUNDRY-ABCD-EFGH-JK23', cluster: 'c', hostname: 'h', profile: 'p', disk: '/dev/disk/by-path/x',
      ssh_keys: [key],
      network: { mode: 'static', address: '10.77.0.5/24', gateway: '10.77.0.1', dns: ['10.77.0.1', '1.1.1.1'] },
    });
  });
});

describe('bmc_user', () => {
  it('asks for the BMC user only when ticked, and maps the API refusal onto it', () => {
    const base = { ...emptyForm, token: 'FOUNDRY-ABCD-EFGH-JK23', cluster: 'rack1', hostname: 'n1' };
    expect(toRequest(base).bmc_user).toBeUndefined();
    expect(toRequest({ ...base, bmcUser: true }).bmc_user).toBe(true);
    const r = problemErrors({ status: 422, title: 'x', errors: [{ location: 'body.bmc_user', message: 'no' }] });
    expect(r.errors.bmc_user).toBe('no');
  });
});

describe('problemErrors', () => {
  it.each([
    [
      'a wrong token goes to the token field on the first step',
      { status: 422, detail: 'approval refused: wrong registration token (attempt 1 of 5)', errors: [{ location: 'body.token', message: 'wrong registration token (attempt 1 of 5)' }] },
      { token: 'wrong registration token (attempt 1 of 5)' }, 'token', [],
    ],
    [
      'a locked token (423) names the token field too',
      { status: 423, detail: 'approval is locked', errors: [{ location: 'body.token', message: 'locked until the machine registers a new token' }] },
      { token: 'locked until the machine registers a new token' }, 'token', [],
    ],
    [
      'settings errors go to their fields on the settings step',
      {
        status: 422, detail: 'approval refused',
        errors: [
          { location: 'body.hostname', message: 'already used by machine 52:54:00:00:00:09' },
          { location: 'body.ssh_keys[1]', message: 'not an authorized_keys line' },
          { location: 'body.network.address', message: 'outside the segment' },
        ],
      },
      { hostname: 'already used by machine 52:54:00:00:00:09', ssh_keys: 'not an authorized_keys line', 'network.address': 'outside the segment' },
      'settings', [],
    ],
    [
      'token and settings errors together show the first step',
      { status: 422, errors: [{ location: 'body.profile', message: 'no such profile' }, { location: 'body.cluster', message: 'no such cluster' }] },
      { profile: 'no such profile', cluster: 'no such cluster' }, 'token', [],
    ],
    [
      'an error on the network object is shown on the mode',
      { status: 422, errors: [{ location: 'body.network', message: 'bad network' }] },
      { 'network.mode': 'bad network' }, 'settings', [],
    ],
    [
      'a conflict names no field',
      { status: 409, detail: 'machine 52:54:00:12:34:56 is ready; only an inventoried machine can be approved' },
      {}, 'confirm', ['machine 52:54:00:12:34:56 is ready; only an inventoried machine can be approved'],
    ],
    [
      'an unknown location is kept as a general message',
      { status: 422, detail: 'refused', errors: [{ location: 'body.frobnicate', message: 'no' }] },
      {}, 'confirm', ['refused', 'body.frobnicate: no'],
    ],
  ])('%s', (_, problem, errors, step, general) => {
    const r = problemErrors(problem);
    expect(r.errors).toEqual(errors);
    expect(r.step).toBe(step);
    expect(r.general).toEqual(general);
  });
});
