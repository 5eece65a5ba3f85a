/**
 * Flows as declared state machines. Each flow type says once what its `data`
 * holds (a TypeBox schema), which steps it has, where each step may go next,
 * and at which steps each of its pages may be used; routes name the page they
 * serve instead of listing steps at every call.
 *
 * A flow row's `data` is read only through {@link FlowDefinition.read}: a row
 * of another type, or whose data does not match the schema (an older release
 * wrote it, or someone edited it), reads as no flow at all, so the person sees
 * the page that says to start again, never a 500.
 */
import type { Static, TSchema } from 'typebox';
import { Compile, type Validator } from 'typebox/compile';
import type { Flow } from '../db/schema.js';
import type { FlowPersister, NewFlow } from '../db/persisters/flows.js';
import { AppError, appError } from '../errors.js';

/** What a person reads when a flow can't be used. */
export interface FlowMessages {
  /** No such flow for this browser (unknown id, another type or browser, unreadable data). */
  missing: string;
  /** It was used, cancelled or timed out. */
  expired: string;
  /** The page belongs to another step: someone skipped ahead or went back past a finished step. */
  outOfOrder: string;
}

export interface FlowSpec<S extends TSchema, Step extends string, Page extends string> {
  type: string;
  data: S;
  /** Stepped flows: each step and the steps it may move on to (`data.step` holds the current one). */
  transitions?: { readonly [K in Step]: readonly Step[] };
  /** Stepped flows: each page and the steps at which it may be used. */
  pages?: { readonly [P in Page]: readonly Step[] };
  messages?: Partial<FlowMessages>;
  /** The error for a revoked flow (e.g. a code entered wrongly too often); default: `expired`. */
  revoked?: () => AppError;
}

/** Where a flow is looked up from: its id, the browser asking, and the time. */
export interface FlowRef {
  id: string;
  bindingHash: string;
  now: number;
}

export interface LoadedFlow<D> {
  flow: Flow;
  data: D;
}

type Flows = { flows: FlowPersister };

const DEFAULT_MESSAGES: FlowMessages = {
  missing: 'This page has expired or was opened in another browser. Start again.',
  expired: 'This page has expired. Start again.',
  outOfOrder: 'These steps must be done in order. Start again.',
};

/** A flow type's one definition; see {@link defineFlow}. */
export interface FlowDefinition<D, Step extends string, Page extends string, S extends TSchema = TSchema> {
  readonly type: string;
  /** The data's schema (for `Static<typeof flow.schema>`). */
  readonly schema: S;
  /** The row's data when the row is of this type and its data matches the schema; otherwise undefined. */
  read(flow: Flow | undefined): D | undefined;
  /** As read(), but a row that can't be read is a `flow_expired` error (the `missing` message). */
  parse(flow: Flow | undefined): D;
  /** The data as stored; throws when it does not match the schema (a bug, not a person's mistake). */
  serialize(data: D): string;
  insert(store: Flows, row: Omit<NewFlow, 'type' | 'data'> & { data: D }): Promise<void>;
  /** This browser's flow of this type, in whatever state and step (undefined: none, or unreadable). */
  find(store: Flows, ref: FlowRef): Promise<LoadedFlow<D> | undefined>;
  /** This browser's active flow at one of the steps `page` accepts; otherwise the error that says to start again. */
  load(store: Flows, ref: FlowRef, page: Page): Promise<LoadedFlow<D>>;
  /** Store `next`, whose step must be a declared transition from the current one; a flow no longer active is `flow_expired`. */
  advance(store: Flows, current: LoadedFlow<D>, next: D, now: number, userId?: string): Promise<void>;
  /** Use the flow up, once: of concurrent callers all but one get `flow_expired`. */
  consume(store: Flows, flow: Flow, now: number): Promise<void>;
  /** Whether `from` may move on to `to`. */
  allows(from: Step, to: Step): boolean;
}

/**
 * The one way to read a flow row's `data`: JSON that matches `schema`, else undefined. For data that is not one flow
 * type's (e.g. what every WebAuthn ceremony keeps beside its caller's data); a flow type reads with its definition.
 */
export function flowDataReader<S extends TSchema>(schema: S): (data: string) => Static<S> | undefined {
  return readerOf(Compile(schema));
}

function readerOf<S extends TSchema>(validator: Validator<{}, S>): (data: string) => Static<S> | undefined {
  return (data) => {
    let value: unknown;
    try {
      value = JSON.parse(data);
    } catch {
      return undefined;
    }
    return validator.Check(value) ? (value as Static<S>) : undefined;
  };
}

/** Thrown for a step change the definition does not declare: a bug in the route, not a person's mistake. */
export class UndeclaredTransitionError extends Error {
  constructor(type: string, from: string, to: string) {
    super(`flow ${type}: no transition from ${from} to ${to}`);
    this.name = 'UndeclaredTransitionError';
  }
}

/**
 * Declare a flow type once. A flow of one step (a WebAuthn ceremony's data) gives `type` and `data`; a flow of
 * several steps keeps its current step in `data.step` and adds `transitions` and `pages`:
 *
 * ```ts
 * const order = defineFlow({ type: 'order', data: OrderData, transitions: { basket: ['paid'], paid: [] }, pages: { pay: ['basket'] } });
 * const loaded = await order.load(store, { id, bindingHash, now }, 'pay');
 * await order.advance(store, loaded, { ...loaded.data, step: 'paid' }, now);
 * ```
 */
export function defineFlow<S extends TSchema, Step extends string = never, Page extends string = never>(
  spec: FlowSpec<S, Step, Page>,
): FlowDefinition<Static<S>, Step, Page, S> {
  type D = Static<S>;
  const validator = Compile(spec.data);
  const messages = { ...DEFAULT_MESSAGES, ...spec.messages };
  const stepOf = (data: D) => (data as { step?: Step }).step as Step;

  const readData = readerOf(validator);
  const read = (flow: Flow | undefined): D | undefined => (flow && flow.type === spec.type ? readData(flow.data) : undefined);

  const allows = (from: Step, to: Step) => !!spec.transitions?.[from]?.includes(to);

  const serialize = (data: D): string => {
    const json = JSON.stringify(data);
    // Checked as it will be read back (JSON drops undefined members).
    if (!validator.Check(JSON.parse(json))) throw new Error(`flow ${spec.type}: data does not match its schema`);
    return json;
  };

  async function find(store: Flows, ref: FlowRef): Promise<LoadedFlow<D> | undefined> {
    const flow = await store.flows.findById(ref.id);
    if (!flow || flow.binding_hash !== ref.bindingHash) return undefined;
    const data = read(flow);
    return data === undefined ? undefined : { flow, data };
  }

  return {
    type: spec.type,
    schema: spec.data,
    read,
    parse(flow) {
      const data = read(flow);
      if (data === undefined) throw appError('flow_expired', messages.missing);
      return data;
    },
    serialize,
    async insert(store, row) {
      await store.flows.insert({ ...row, type: spec.type, data: serialize(row.data) });
    },
    find,
    async load(store, ref, page) {
      const found = await find(store, ref);
      if (!found) throw appError('flow_expired', messages.missing);
      const { flow, data } = found;
      if (flow.state === 'revoked') throw spec.revoked?.() ?? appError('flow_expired', messages.expired);
      if (flow.state !== 'active' || flow.expires_at <= ref.now) throw appError('flow_expired', messages.expired);
      const accepted: readonly Step[] = spec.pages?.[page] ?? [];
      if (!accepted.includes(stepOf(data))) throw appError('flow_expired', messages.outOfOrder);
      return found;
    },
    async advance(store, current, next, now, userId) {
      const from = stepOf(current.data);
      const to = stepOf(next);
      if (!allows(from, to)) throw new UndeclaredTransitionError(spec.type, from, to);
      const fields = { data: serialize(next), ...(userId ? { user_id: userId } : {}) };
      if (!(await store.flows.advance(current.flow.id, fields, now))) throw appError('flow_expired');
    },
    async consume(store, flow, now) {
      if (!(await store.flows.consume(flow.id, now))) throw appError('flow_expired');
    },
    allows,
  };
}
