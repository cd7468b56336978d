import { describe, expect, it } from 'vitest';
import { applyEvent, can, countByState, distinct, emptyFilter, filterMachines, fromList, type Filter } from './machines';
import { event, machine, registration } from '../test/fixtures';

describe('applyEvent', () => {
  const a = machine({ mac: '52:54:00:aa:00:01', revision: 3 });
  const base = fromList([a]);

  it.each([
    ['creates an unknown machine', event('created', machine({ mac: '52:54:00:aa:00:02' })), 2, undefined],
    ['updates to a newer revision', event('updated', { ...a, state: 'ready', revision: 4 }), 1, 'ready'],
    ['ignores an older revision', event('updated', { ...a, state: 'discovered', revision: 2 }), 1, 'inventoried'],
    ['deletes', event('deleted', { ...a, revision: 3 }), 0, undefined],
    ['does not delete on a stale delete', event('deleted', { ...a, revision: 1 }), 1, 'inventoried'],
  ] as const)('%s', (_, ev, size, state) => {
    const out = applyEvent(base, ev);
    expect(out.size).toBe(size);
    if (state) expect(out.get(a.mac)?.state).toBe(state);
    expect(base.size).toBe(1); // the input map is never changed
  });

  it('ignores malformed events', () => {
    expect(applyEvent(base, { type: 'updated', machine: null } as never)).toBe(base);
  });
});

describe('fromList', () => {
  it('replays events that arrived while the list was loading', () => {
    const a = machine({ mac: '52:54:00:bb:00:01', revision: 5 });
    const b = machine({ mac: '52:54:00:bb:00:02', revision: 1 });
    const map = fromList(
      [a, b],
      [
        event('updated', { ...a, state: 'approved', revision: 4 }), // older than the list: ignored
        event('updated', { ...b, state: 'ready', revision: 2 }),
        event('created', machine({ mac: '52:54:00:bb:00:03' })),
      ],
    );
    expect(map.get(a.mac)?.state).toBe('inventoried');
    expect(map.get(b.mac)?.state).toBe('ready');
    expect(map.size).toBe(3);
  });
});

describe('filterMachines and countByState', () => {
  const ms = [
    machine({ mac: '52:54:00:cc:00:01', state: 'inventoried', segment: 'lab', hostname: 'discovered-cc0001' }),
    machine({ mac: '52:54:00:cc:00:02', state: 'inventoried', segment: 'rack', summary: { vendor: 'Dell Inc.', model: 'PowerEdge R650' } }),
    machine({ mac: '52:54:00:cc:00:03', state: 'ready', segment: 'lab', cluster: 'c1', hostname: 'node-1', ip: '10.77.0.10' }),
    machine({ mac: '52:54:00:cc:00:04', state: 'failed', segment: 'lab', cluster: 'c1', message: 'checksum mismatch' }),
    machine({ mac: '52:54:00:cc:00:05', state: 'discovered', segment: 'rack' }),
    // Two hosts answer for this MAC: one of them from 10.77.0.66.
    machine({
      mac: '52:54:00:cc:00:06', state: 'inventoried', segment: 'lab', mac_conflict: true,
      registrations: [registration({ ip: '10.77.0.60' }), registration({ ip: '10.77.0.66' })],
    }),
  ];
  const f = (p: Partial<Filter>): Filter => ({ ...emptyFilter, ...p });
  const macs = (xs: { mac: string }[]) => xs.map((m) => m.mac.slice(-2)).sort();

  it.each([
    ['no filter', f({}), ['01', '02', '03', '04', '05', '06']],
    ['one state', f({ states: new Set(['inventoried']) }), ['01', '02', '06']],
    ['two states', f({ states: new Set(['ready', 'failed']) }), ['03', '04']],
    ['segment', f({ segment: 'rack' }), ['02', '05']],
    ['cluster', f({ cluster: 'c1' }), ['03', '04']],
    ['search vendor, any case', f({ q: 'dell' }), ['02']],
    ['search model words', f({ q: 'poweredge r650' }), ['02']],
    ['search MAC with dashes', f({ q: '52-54-00-CC-00-03' }), ['03']],
    ['search MAC without separators', f({ q: '525400cc0004' }), ['04']],
    ['search IP', f({ q: '10.77.0.10' }), ['03']],
    ['search and state', f({ q: 'lab', states: new Set(['inventoried']) }), ['01', '06']],
    ['search a registration\'s address', f({ q: '10.77.0.66' }), ['06']],
    ['MAC conflicts only', f({ conflict: true }), ['06']],
    ['MAC conflicts and another state', f({ conflict: true, states: new Set(['ready']) }), []],
    ['nothing matches', f({ q: 'no-such-thing' }), []],
  ] as const)('%s', (_, filter, want) => {
    expect(macs(filterMachines(ms, filter))).toEqual(want);
  });

  it('counts every state under the other filters, ignoring the state filter', () => {
    const c = countByState(ms, f({ segment: 'lab', states: new Set(['ready']) }));
    expect(c).toMatchObject({ all: 4, inventoried: 2, ready: 1, failed: 1, discovered: 0, rejected: 0 });
    expect(countByState(ms)).toMatchObject({ all: 6, inventoried: 3, discovered: 1 });
    expect(countByState(ms, f({ conflict: true }))).toMatchObject({ all: 1, inventoried: 1 });
  });

  it('sorts newest first by default and by state in life-cycle order', () => {
    expect(macs(filterMachines(ms, emptyFilter).slice(0, 1))).toEqual(['06']);
    expect(filterMachines(ms, emptyFilter, 'state').map((m) => m.state)).toEqual([
      'discovered', 'inventoried', 'inventoried', 'inventoried', 'ready', 'failed',
    ]);
  });

  it('lists distinct segments and clusters', () => {
    expect(distinct(ms, 'segment')).toEqual(['lab', 'rack']);
    expect(distinct(ms, 'cluster')).toEqual(['c1']);
  });
});

describe('can', () => {
  it('follows the actions the API lists, never the state name', () => {
    // A ready machine whose API answer allows only delete shows no rediscover.
    expect(can(machine({ state: 'ready', actions: ['delete'] }), 'rediscover')).toBe(false);
    expect(can(machine({ state: 'inventoried', actions: ['approve', 'reject', 'delete'] }), 'approve')).toBe(true);
    expect(can(machine({ state: 'failed' }), 'retry')).toBe(true);
    expect(can(machine({ state: 'rejected' }), 'reject')).toBe(false);
    expect(can({ actions: null }, 'delete')).toBe(false);
  });
});
