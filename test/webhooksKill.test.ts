/**
 * Nothing lost on a crash: the real server (bin/latchkey.js serve, SQLite file) commits a change with its outbox row
 * (a link that expired unused, recorded by the server's own sweep), tries to deliver it to a receiver that is down
 * (503), and is killed with SIGKILL. Started again with the receiver up, it delivers that change exactly once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { loadConfig } from '../src/config/index.js';
import { openDatabase } from '../src/db/connect.js';
import { createStore } from '../src/db/store.js';
import { SecretBox } from '../src/secretBox.js';
import { createUser } from '../src/users/createUser.js';
import { issueInvite } from '../src/flows/enrolment/invites.js';
import { newWebhookSecret } from '../src/admin/routes/webhooks.js';
import { webhookSecretContext } from '../src/webhooks/deliverWebhooks.js';
import { startWebhookReceiver } from './support/webhookReceiver.js';
import { freePort } from './support/serve.js';

const root = new URL('..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'latchkey-webhooks-kill-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));


async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

it('a change committed before kill -9 is delivered once after a restart', { timeout: 180_000 }, async () => {
  const receiver = await startWebhookReceiver();
  const port = await freePort();
  const env = {
    DATABASE_URL: `sqlite:${join(dir, 'latchkey.db')}`,
    PORT: String(port),
    HOST: '127.0.0.1',
    LATCHKEY_ORIGIN: `http://localhost:${port}`,
    LATCHKEY_SECRET_KEY: Buffer.alloc(32, 7).toString('base64url'),
    LATCHKEY_OUTBOX_DIR: join(dir, 'outbox'),
    LOG_LEVEL: 'silent',
    // First attempt at once, then every 2 seconds: the restart finds it due again without waiting.
    LATCHKEY_WEBHOOK_RETRY_SECONDS: '0,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2',
    LATCHKEY_WEBHOOK_POLL_SECONDS: '1',
  };
  const config = loadConfig(env);
  const db = openDatabase(config.databaseUrl);
  await db.migrate();
  const store = createStore(db);
  const secret = newWebhookSecret();
  let child: ChildProcess | undefined;
  try {
    const person = await createUser(store, { email: 'kim@example.org', displayName: 'Kim' }, Date.now());
    await store.webhooks.insertEndpoint({ id: 'hr', url: receiver.url, description: 'HR feed', events: '["enrolment.expired"]', secret: new SecretBox(config).seal(secret, webhookSecretContext('hr')), created_by: null, created_at: Date.now() });
    // The sweep's mark from before the link, so the server's first sweeps report it.
    await store.settings.set('enrolment_expiry_recorded_until', String(Date.now()));
    const link = await issueInvite(store, config, person, Date.now(), { lifetimeSeconds: 1 });

    const start = () => spawn(process.execPath, [join(root, 'bin/latchkey.js'), 'serve'], { cwd: dir, env: { ...process.env, ...env }, stdio: 'ignore' });
    const delivery = () => db.kysely.selectFrom('webhook_deliveries').selectAll().where('endpoint_id', '=', 'hr').executeTakeFirst();

    receiver.answer = { status: 503, body: 'down' };
    child = start();
    // The server commits the expiry with its delivery, tries it, and records the failure.
    const failed = await until('a failed first attempt', async () => {
      const d = await delivery();
      return d && d.attempts >= 1 && d.claimed_until === null ? d : undefined;
    });
    expect(failed.status).toBe('pending');
    expect(JSON.parse(failed.payload)).toMatchObject({ type: 'enrolment.expired', data: { user: { id: person.id }, enrolment: { id: link.flowId } } });
    const killed = child;
    const exited = new Promise((resolve) => killed.once('exit', (_code, signal) => resolve(signal)));
    killed.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const triedBefore = receiver.received.filter((r) => r.signed['webhook-id'] === failed.id).length;
    expect(triedBefore).toBeGreaterThanOrEqual(1);
    expect(receiver.received.every((r) => r.signed['webhook-id'] === failed.id)).toBe(true);

    receiver.answer = { status: 204 };
    child = start();
    const delivered = await until('the delivery after the restart', async () => {
      const d = await delivery();
      return d?.status === 'delivered' ? d : undefined;
    });
    // Give a second delivery the time it would need to show up (two polls).
    await new Promise((r) => setTimeout(r, 2_500));
    const after = receiver.received.filter((r) => r.signed['webhook-id'] === failed.id).slice(triedBefore);
    expect(after).toHaveLength(1);
    expect(new Webhook(secret).verify(after[0]!.body, after[0]!.signed)).toMatchObject({ type: 'enrolment.expired' });
    expect(delivered.response_status).toBe(204);
    // One expiry, one delivery: the restart did not report the link again.
    expect(await db.kysely.selectFrom('webhook_deliveries').select('id').execute()).toHaveLength(1);
    expect((await store.audit.listByEvent('enrolment.expired')).length).toBe(1);
  } finally {
    child?.kill('SIGKILL');
    await receiver.close();
    await db.close();
  }
});
