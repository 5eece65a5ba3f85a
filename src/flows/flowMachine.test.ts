/**
 * The flow machine on its own, over an in-memory stand-in for the flows
 * persister: declared transitions only, unreadable data reads as no flow, and a
 * page used at the wrong step says the steps go in order.
 */
import { describe, expect, it } from 'vitest';
import { Type } from 'typebox';
import type { FlowPersister, NewFlow } from '../db/persisters/flows.js';
import type { Flow } from '../db/schema.js';
import { AppError } from '../errors.js';
import { defineFlow, flowDataReader, UndeclaredTransitionError } from './flowMachine.js';

const NOW = 1_750_000_000_000;
const BROWSER = 'binding-a';

/** Just what the machine calls, with the persister's conditions (active and unexpired). */
function memoryFlows() {
  const rows = new Map<string, Flow>();
  const usable = (row: Flow | undefined, now: number) => !!row && row.state === 'active' && row.expires_at > now;
  const flows = {
    async insert(flow: NewFlow) {
      rows.set(flow.id, { ...flow, state: 'active', consumed_at: null, failed_attempts: 0 });
    },
    async findById(id: string) {
      return rows.get(id);
    },
    async advance(id: string, fields: { data: string; user_id?: string | null }, now: number) {
      const row = rows.get(id);
      if (!usable(row, now)) return false;
      rows.set(id, { ...row!, ...fields });
      return true;
    },
    async consume(id: string, now: number) {
      const row = rows.get(id);
      if (!usable(row, now)) return false;
      rows.set(id, { ...row!, state: 'consumed', consumed_at: now });
      return true;
    },
  };
  return { store: { flows: flows as unknown as FlowPersister }, rows };
}

const orderFlow = defineFlow({
  type: 'order',
  data: Type.Object({ step: Type.Union([Type.Literal('basket'), Type.Literal('address'), Type.Literal('paid')]), items: Type.Integer({ minimum: 0 }) }),
  transitions: { basket: ['address'], address: ['address', 'paid'], paid: [] },
  pages: { basket: ['basket'], address: ['address'], receipt: ['paid'] },
  messages: { expired: 'This order has expired. Start again.' },
});

async function started(data: { step: 'basket' | 'address' | 'paid'; items: number } = { step: 'basket', items: 1 }) {
  const { store, rows } = memoryFlows();
  await orderFlow.insert(store, { id: 'f1', binding_hash: BROWSER, user_id: null, lookup: 'order:f1', data, created_at: NOW, expires_at: NOW + 60_000 });
  return { store, rows, ref: { id: 'f1', bindingHash: BROWSER, now: NOW } };
}

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('defineFlow', () => {
  it('moves along a declared transition, and throws for one that is not declared', async () => {
    const { store, ref } = await started();
    const basket = await orderFlow.load(store, ref, 'basket');
    await orderFlow.advance(store, basket, { step: 'address', items: 2 }, NOW);
    const address = await orderFlow.load(store, ref, 'address');
    expect(address.data).toEqual({ step: 'address', items: 2 });

    // address → basket is not declared: a bug in the caller, and nothing is stored.
    const err = await errorOf(orderFlow.advance(store, address, { step: 'basket', items: 2 }, NOW));
    expect(err).toBeInstanceOf(UndeclaredTransitionError);
    expect((await orderFlow.load(store, ref, 'address')).data.step).toBe('address');
    expect(orderFlow.allows('basket', 'paid')).toBe(false);
    expect(orderFlow.allows('address', 'paid')).toBe(true);
  });

  it('reads data that does not match the schema as no flow: the "start again" page, never a 500', async () => {
    const { store, rows, ref } = await started();
    for (const data of ['{"step":"basket","items":-1}', '{"step":"checkout","items":1}', '{"items":1}', 'not json', '[]']) {
      rows.set('f1', { ...rows.get('f1')!, data });
      expect(orderFlow.read(rows.get('f1'))).toBeUndefined();
      const err = await errorOf(orderFlow.load(store, ref, 'basket'));
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe('flow_expired');
      expect((err as AppError).status).toBe(410);
      expect((err as AppError).message).toBe('This page has expired or was opened in another browser. Start again.');
      expect(() => orderFlow.parse(rows.get('f1'))).toThrow(AppError);
    }
    // Another flow type's row is not this flow, whatever it holds.
    expect(orderFlow.read({ ...rows.get('f1')!, type: 'other', data: '{"step":"basket","items":1}' })).toBeUndefined();
    // The same reader for data that is no one flow's.
    const read = flowDataReader(Type.Object({ ids: Type.Optional(Type.Array(Type.String())) }));
    expect(read('{"ids":["a"]}')).toEqual({ ids: ['a'] });
    expect(read('{"ids":[1]}')).toBeUndefined();
  });

  it('answers a page used at a step it does not accept with the "in order" message', async () => {
    const { store, ref } = await started();
    const err = await errorOf(orderFlow.load(store, ref, 'receipt'));
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('flow_expired');
    expect((err as AppError).message).toBe('These steps must be done in order. Start again.');
  });

  it('keeps a flow to its browser, and says when it has expired or been used', async () => {
    const { store, ref } = await started();
    const other = await errorOf(orderFlow.load(store, { ...ref, bindingHash: 'binding-b' }, 'basket'));
    expect((other as AppError).message).toBe('This page has expired or was opened in another browser. Start again.');
    const late = await errorOf(orderFlow.load(store, { ...ref, now: NOW + 60_000 }, 'basket'));
    expect((late as AppError).message).toBe('This order has expired. Start again.');

    const { flow } = await orderFlow.load(store, ref, 'basket');
    await orderFlow.consume(store, flow, NOW);
    expect(((await errorOf(orderFlow.consume(store, flow, NOW))) as AppError).code).toBe('flow_expired');
    expect(((await errorOf(orderFlow.load(store, ref, 'basket'))) as AppError).message).toBe('This order has expired. Start again.');
    // Used up, it is still this browser's to show a last page for.
    expect((await orderFlow.find(store, ref))?.flow.state).toBe('consumed');
  });

  it('refuses to store data that does not match its own schema', async () => {
    const { store } = memoryFlows();
    const row = { id: 'f2', binding_hash: BROWSER, user_id: null, lookup: 'order:f2', created_at: NOW, expires_at: NOW + 60_000 };
    await expect(orderFlow.insert(store, { ...row, data: { step: 'basket', items: 1.5 } })).rejects.toThrow('does not match its schema');
  });
});
