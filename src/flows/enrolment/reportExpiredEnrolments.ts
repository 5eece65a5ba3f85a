/**
 * Links and codes expire by time, in no transaction of their own: nothing happens when one runs out. So that an
 * expiry is recorded (audit `enrolment.expired`) and reported (webhook `enrolment.expired`) once, a sweep moves a
 * mark in the settings table over the time that has passed and, in the same transaction, records every link or code
 * that expired unused in that span. The mark moves by compare-and-swap: of instances sweeping together, exactly one
 * records each span.
 */
import type { FastifyInstance } from 'fastify';
import { audit } from '../../audit.js';
import { ENROLMENT_FLOWS, enrolmentData, type EnrolmentMethod } from './invites.js';

const MARK = 'enrolment_expiry_recorded_until';

/** Record links and codes that expired since the last sweep; returns how many. The first sweep only sets the mark. */
export async function reportExpiredEnrolments(app: FastifyInstance): Promise<number> {
  const { store, now, metrics } = app.latchkey;
  const until = now();
  const methods: EnrolmentMethod[] = [];
  const count = await store.transaction(async (tx) => {
    const from = await tx.settings.get(MARK);
    if (from === undefined) {
      // Links that expired before Latchkey kept this mark are not reported all at once on the first start.
      await tx.settings.getOrInsert(MARK, String(until));
      return 0;
    }
    if (Number(from) >= until || !(await tx.settings.swap(MARK, from, String(until)))) return 0;
    const expired = await tx.flows.listExpiredBetween(ENROLMENT_FLOWS, Number(from), until);
    for (const flow of expired) {
      const data = enrolmentData(flow);
      const method = data.parentId ? 'code' : (data.method ?? (flow.type === 'invite' ? 'link' : 'code'));
      methods.push(method);
      await audit(
        app,
        null,
        {
          event: 'enrolment.expired',
          subjectUserId: flow.user_id,
          actorUserId: null,
          detail: { flowId: flow.id, method, expiredAt: new Date(flow.expires_at).toISOString() },
        },
        tx,
      );
    }
    return expired.length;
  });
  // Counted once the span's records are committed: the instance whose sweep recorded an expiry counts it, once.
  for (const method of methods) metrics.enrolment('expired', method);
  return count;
}
