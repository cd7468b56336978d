import { describe, expect, it } from 'vitest';
import { ACTIONS, applyEvent, can, countByState, emptyFilter, filtered, listQuery, options, pageRange, type Filter } from './machines';
import { event, machine } from '../test/fixtures';
import lifecycle from './lifecycle.json';

describe('applyEvent', () => {
  const a = machine({ mac: '52:54:00:aa:00:01', revision: 3 });
  const base = [a];

  it.each([
    ['leaves a machine not shown to the next load', event('created', machine({ mac: '52:54:00:aa:00:02' })), 1, undefined, true],
    ['updates to a newer revision', event('updated', { ...a, state: 'ready', revision: 4 }), 1, 'ready', true],
    ['ignores an older revision', event('updated', { ...a, state: 'discovered', revision: 2 }), 1, 'inventoried', false],
    ['deletes', event('deleted', { ...a, revision: 3 }), 0, undefined, true],
    ['does not delete on a stale delete', event('deleted', { ...a, revision: 1 }), 1, 'inventoried', false],
  ] as const)('%s', (_, ev, size, state, changed) => {
    const out = applyEvent(base, ev);
    expect(out.items).toHaveLength(size);
    expect(out.changed).toBe(changed);
    if (state) expect(out.items[0]?.state).toBe(state);
    expect(base).toHaveLength(1); // the input is never changed
  });

  it('keeps the summary an event lacks', () => {
    const out = applyEvent(base, event('updated', { ...a, summary: undefined as never, revision: 4 }));
    expect(out.items[0]?.summary).toEqual(a.summary);
  });

  it('ignores malformed events', () => {
    expect(applyEvent(base, { type: 'updated', machine: null } as never).items).toBe(base);
  });
});

describe('listQuery', () => {
  const f = (p: Partial<Filter>): Filter => ({ ...emptyFilter, ...p });
  it.each([
    ['no filter, newest first', f({}), 'first_seen', '', { sort: '-first_seen', limit: 100 }],
    ['states in life-cycle order, one parameter', f({ states: new Set(['ready', 'inventoried']) }), 'state', '',
      { sort: 'state', limit: 100, state: ['inventoried,ready'] }],
    ['segment, cluster, trimmed text, conflicts', f({ segment: 'lab', cluster: 'c1', q: '  dell r650 ', conflict: true }), 'hostname', '',
      { sort: 'hostname', limit: 100, segment: 'lab', cluster: 'c1', q: 'dell r650', conflict: true }],
    ['a later page', f({}), 'mac', 'CURSOR', { sort: 'mac', limit: 100, cursor: 'CURSOR' }],
  ] as const)('%s', (_, filter, sort, cursor, want) => {
    expect(listQuery(filter, sort, cursor)).toEqual(want);
  });

  it('says when a filter is set', () => {
    expect(filtered(emptyFilter)).toBe(false);
    expect(filtered(f({ q: '  ' }))).toBe(false);
    expect(filtered(f({ conflict: true }))).toBe(true);
    expect(filtered(f({ states: new Set(['ready']) }))).toBe(true);
  });
});

describe('countByState', () => {
  it('reads the API counts and adds them up', () => {
    expect(countByState({ counts: { inventoried: 2, ready: 1 } })).toMatchObject({ all: 3, inventoried: 2, ready: 1, failed: 0 });
    expect(countByState(null)).toMatchObject({ all: 0, discovered: 0 });
  });
});

describe('options and pageRange', () => {
  it('offers the known values, those shown and the chosen one', () => {
    const items = [machine({ segment: 'rack' }), machine({ segment: 'lab' }), machine({})];
    expect(options(['lab', 'dmz'], items, 'segment', 'old')).toEqual(['dmz', 'lab', 'old', 'rack']);
  });

  it('describes the page', () => {
    expect(pageRange(0, 100, 12345)).toBe('1–100 of 12,345');
    expect(pageRange(2, 45, 245)).toBe('201–245 of 245');
    expect(pageRange(0, 0, 0)).toBe('no machine');
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

  it('knows every action an administrator may take, and no other', () => {
    // lifecycle.json is generated from Go's package lifecycle (go test ./lifecycle -update).
    const fromGo = new Set(Object.values(lifecycle as Record<string, string[]>).flat());
    expect([...fromGo].sort()).toEqual([...ACTIONS].sort());
  });
});
