/**
 * The `latchkey` command: serve, migrate, users …, admin bootstrap, services …, keys rotate, doctor.
 * From a checkout: `npm run latchkey -- <command>`.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, unsafeSettings, type Config } from './config/index.js';
import { openDatabase, type Db, type OpenOptions } from './db/connect.js';
import { Store } from './db/store.js';
import { createUser, UserInputError } from './users/createUser.js';
import { hashNationalId, nationalIdFormat } from './users/nationalId.js';
import { randomToken } from './crypto.js';
import { issueInvite } from './flows/enrolment/invites.js';
import type { EmailTemplate } from './db/schema.js';
import type { SigningAlg } from './oidc/signingKeys.js';
import { MAINTENANCE_INTERVAL_MS, pruneExpired } from './maintenance.js';
import { unsupportedRuntime, withoutProviderRuntimeWarning } from './runtime.js';

const usage = `Usage: latchkey <command> [options]

Commands:
  serve                                   Run the service (migrations are applied at start)
  migrate                                 Apply database migrations and exit
  users add --email EMAIL --name NAME [--national-id VALUE]
                                          Create a user (status Pending until a first passkey is registered); with
                                          --national-id, their National Insurance number (or LATCHKEY_NATIONAL_ID_*),
                                          kept only as an HMAC, so they can use self-service
  users invite --email EMAIL [--name NAME]
                                          Print a single-use enrolment link for that user (creating a Pending user
                                          if none has that email; the name defaults to the part before the @)
  users list                              List users and their status
  users import FILE.csv [--skip-invalid] [--dry-run] [--send-enrolment-email [--template ID]]
                                          Add users from a CSV file (columns name, email, and optionally National
                                          Insurance number and roles; FILE - reads stdin). Every row is checked first:
                                          if any is refused nothing is written (exit 1) unless --skip-invalid;
                                          --dry-run checks and reports only
  admin bootstrap --email EMAIL --name NAME
                                          Make the first RA Manager of the registration-authority console (/admin)
                                          and print their single-use enrolment link; refused once a manager exists
  services add --name NAME --redirect-uri URI [--redirect-uri URI …] (--public | --confidential)
               [--aal 1|2|3] [--first-party] [--logout-uri URI …] [--id-token-alg ES256|RS256]
                                          Register a service (an OpenID Connect client); prints its client id, and
                                          for a confidential service its secret (shown once)
  services list                           List services
  services remove CLIENT_ID               Remove a service: it can no longer sign people in, and its tokens stop working
  keys rotate                             Add a new signing key; the previous one stays published for
                                          LATCHKEY_OIDC_KEY_RETIRE_HOURS (running servers switch to it within a minute)
  metadata import FILE                    Verify a FIDO metadata BLOB (MDS3, as downloaded from the FIDO Alliance) against
                                          LATCHKEY_FIDO_METADATA_ROOT and use it; a stale, older or unverifiable one is
                                          refused and the previous one kept (running servers pick it up within a minute)
  doctor                                  Print the OpenID Connect provider's configuration, with warnings
  api-tokens create --name NAME --role ROLE [--expires-days N]
                                          Make a bearer token for the admin API and SCIM that acts with one console
                                          role (ra_manager, ra_agent_advanced, ra_agent, auditor); the token, shown
                                          once, is the last line of output. Days default to 90, at most 365
  api-tokens list                         List tokens: id, name, role, status, expiry, last use
  api-tokens revoke ID                    Revoke a token: it stops working at once

Configuration comes from the environment: see README.md.`;

/** Where a command writes and which environment it reads: the process's own, or (in tests) strings and a map. */
export interface CliIo {
  stdout: { write(text: string): unknown };
  /** A terminal (isTTY) gets a progress bar; anything else, a line now and then. */
  stderr: { write(text: string): unknown; isTTY?: boolean };
  /** For `users import -` (default: the process's stdin). */
  stdin?: AsyncIterable<string | Buffer>;
  env: Record<string, string | undefined>;
}

/** A command stopped with a message for the person at the terminal: 1 for a usage or input problem, 2 for configuration. */
class CliExit extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

function fail(message: string, code = 1): never {
  throw new CliExit(message, code);
}

/** Open and migrate the database, or stop with one line naming DATABASE_URL. */
async function openMigrated(config: Config, options: OpenOptions = {}): Promise<{ db: Db; applied: string[] }> {
  let db: Db | undefined;
  try {
    db = openDatabase(config.databaseUrl, options);
    return { db, applied: await db.migrate() };
  } catch (err) {
    await db?.close().catch(() => {});
    fail(`configuration error: DATABASE_URL: cannot open or migrate the database (${(err as Error).message})`, 2);
  }
}

async function withStore<T>(config: Config, fn: (store: Store, applied: string[]) => Promise<T>): Promise<T> {
  const { db, applied } = await openMigrated(config);
  try {
    return await fn(new Store(db.kysely), applied);
  } finally {
    await db.close();
  }
}

const listenProblems: Record<string, (c: Config) => string> = {
  EADDRINUSE: (c) => `PORT: ${c.port} is already in use on ${c.host}`,
  EACCES: (c) => `PORT: not allowed to listen on ${c.port} (ports below 1024 need privileges)`,
  EADDRNOTAVAIL: (c) => `HOST: ${c.host} is not an address of this machine`,
  ENOTFOUND: (c) => `HOST: ${c.host} could not be resolved`,
};

async function serve(config: Config, io: CliIo): Promise<void> {
  const { buildApp } = await withoutProviderRuntimeWarning(() => import('./app.js'));
  const { db } = await openMigrated(config, { backgroundCheckpoints: true, cacheMiB: config.sqliteCacheMiB });
  const app = await buildApp(config, { db });
  app.addHook('onClose', () => db.close());
  const runtime = unsupportedRuntime();
  if (runtime) app.log.warn(runtime);
  for (const warning of unsafeSettings(config)) app.log.warn(warning);
  const { doctorReport } = await import('./oidc/doctor.js');
  for (const warning of (await doctorReport(config, app.latchkey.store, Date.now(), { provider: app.latchkey.oidc })).warnings) app.log.warn(`OpenID Connect: ${warning} (see latchkey doctor)`);
  const prune = () =>
    pruneExpired(app.latchkey.store, config, Date.now()).catch((err: unknown) => app.log.error({ err }, 'pruning expired sessions and flows failed'));
  await prune();
  const timer = setInterval(prune, MAINTENANCE_INTERVAL_MS);
  timer.unref();
  app.addHook('onClose', async () => clearInterval(timer));
  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (err) {
    const problem = listenProblems[(err as { code?: string }).code ?? ''];
    await app.close();
    if (problem) fail(`configuration error: ${problem(config)}`, 2);
    throw err;
  }
  let metricsAddress;
  try {
    metricsAddress = await app.metricsListener.listen();
  } catch (err) {
    const problem = listenProblems[(err as { code?: string }).code ?? ''];
    await app.close();
    const metricsConfig = { ...config, port: config.metricsPort!, host: config.metricsHost };
    if (problem) fail(`configuration error: ${problem(metricsConfig).replace(/^PORT/, 'LATCHKEY_METRICS_PORT').replace(/^HOST/, 'LATCHKEY_METRICS_HOST')}`, 2);
    throw err;
  }
  // Only once it serves: a serve that failed to start returns its exit code and leaves no handlers behind.
  const close = async (signal: string) => {
    app.log.info({ signal }, 'shutting down');
    await app.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void close('SIGINT'));
  process.once('SIGTERM', () => void close('SIGTERM'));
  if (metricsAddress) app.log.info(`Metrics are at http://${config.metricsHost}:${metricsAddress.port}/metrics`);
  app.log.info(`Latchkey is serving ${config.origin} (listening on ${config.host}:${config.port})`);
}

/** A display name for a person invited by email alone: the part before the @, which they or an agent can change. */
function nameFromEmail(email: string): string {
  return email.trim().split('@')[0]!.slice(0, 100) || email.trim();
}

async function main(argv: string[], io: CliIo): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(io.env);
  } catch (err) {
    if (err instanceof ConfigError) fail(`configuration error: ${err.message}`, 2);
    throw err;
  }
  const [command, sub, ...rest] = argv;
  // --national-id only where a user is made with one (users add); elsewhere it is an unknown option.
  const flags = (withNationalId = false) =>
    parseArgs({
      args: rest,
      options: { email: { type: 'string' }, name: { type: 'string' }, ...(withNationalId ? { 'national-id': { type: 'string' as const } } : {}) },
      strict: true,
      allowPositionals: false,
    }).values as { email?: string; name?: string; 'national-id'?: string };

  switch (command) {
    case 'serve':
    case undefined:
      return serve(config, io);
    case 'migrate': {
      const applied = await withStore(config, async (_store, applied) => applied);
      io.stdout.write(applied.length ? `Applied migrations: ${applied.join(', ')}.\n` : 'Database is up to date: no migration to apply.\n');
      return;
    }
    case 'users': {
      if (sub === 'import') return importUsersFile(config, io, rest);
      let values: { email?: string; name?: string; 'national-id'?: string };
      try {
        values = sub === 'list' ? {} : flags(sub === 'add');
      } catch (err) {
        fail(`${(err as Error).message}\n\n${usage}`);
      }
      if (sub === 'add') {
        if (!values.email || !values.name) fail('users add needs --email and --name');
        const hashNationalIdWith = values['national-id'] === undefined ? undefined : checkNationalId(config, values['national-id']);
        const user = await withStore(config, (store) =>
          store.transaction(async (tx) => {
            const created = await createUser(tx, { email: values.email!, displayName: values.name! }, Date.now());
            // Kept only as an HMAC under the server secret, as the console does; the secret is the one the server uses.
            if (hashNationalIdWith) {
              const secret = await tx.settings.getOrInsert('server_secret', randomToken(32));
              await tx.users.setNationalIdHash(created.id, hashNationalIdWith(secret), Date.now());
            }
            // Audited (and so reported to webhooks) as the console's Add user is, in the same transaction.
            await tx.audit.record({ at: Date.now(), event: 'user.created', outcome: 'success', subjectUserId: created.id, detail: { nationalId: !!hashNationalIdWith, via: 'cli' } });
            return created;
          }),
        ).catch(mapUserError);
        io.stdout.write(`Created user ${user.email} (${user.status}), id ${user.id}\n`);
        return;
      }
      if (sub === 'invite') {
        if (!values.email) fail('users invite needs --email');
        const invite = await withStore(config, async (store) => {
          let user = await store.users.findByEmail(values.email!);
          if (!user) {
            user = await createUser(store, { email: values.email!, displayName: values.name ?? nameFromEmail(values.email!) }, Date.now());
            io.stderr.write(`Created user ${user.email} (pending) named "${user.display_name}".\n`);
          }
          const subject = user;
          // The record (and the webhook it reports) lands with the link or not at all.
          return issueInvite(store, config, subject, Date.now(), {
            method: 'cli',
            alongside: (tx, flowId) => tx.audit.record({ at: Date.now(), event: 'enrolment.invited', outcome: 'success', subjectUserId: subject.id, detail: { via: 'cli', flowId } }),
          });
        }).catch(mapUserError);
        io.stdout.write(`${invite.url}\n`);
        io.stderr.write(`Single-use link; expires ${new Date(invite.expiresAt).toISOString()}.\n`);
        return;
      }
      if (sub === 'list') {
        const limit = 1000;
        const users = await withStore(config, (store) => store.users.list(limit + 1));
        for (const u of users.slice(0, limit)) io.stdout.write(`${u.status.padEnd(9)} ${u.email}\t${u.display_name}\n`);
        if (users.length > limit) io.stderr.write(`Showing the first ${limit} users.\n`);
        return;
      }
      fail(`unknown users command "${sub ?? ''}"\n\n${usage}`);
    }
    case 'admin': {
      if (sub !== 'bootstrap') fail(`unknown admin command "${sub ?? ''}"\n\n${usage}`);
      let values: { email?: string; name?: string };
      try {
        values = flags();
      } catch (err) {
        fail(`${(err as Error).message}\n\n${usage}`);
      }
      if (!values.email || !values.name) fail('admin bootstrap needs --email and --name');
      const result = await withStore(config, (store) => bootstrapManager(store, config, values.email!, values.name!)).catch(mapUserError);
      if (result.created) io.stderr.write(`Created user ${values.email} (pending).\n`);
      io.stderr.write(`${values.email} is now an RA Manager. Open this link to set up a passkey, then sign in at ${config.origin}/admin:\n`);
      io.stdout.write(`${result.url}\n`);
      io.stderr.write(`Single-use link; expires ${new Date(result.expiresAt).toISOString()}.\n`);
      return;
    }
    case 'api-tokens': {
      const { issueApiToken, revokeApiToken, checkApiTokenFields, apiTokenStatus, API_TOKEN_DEFAULT_DAYS } = await import('./api/apiTokens.js');
      // The command line acts for no one the audit log knows: the records say only how (detail.via).
      const auditWithoutActor: import('./api/apiTokens.js').ApiTokenAuditWriter = (tx, r) => tx.audit.record({ at: Date.now(), outcome: 'success', ...r });
      if (sub === 'list') {
        const tokens = await withStore(config, (store) => store.apiTokens.list());
        const iso = (t: number | null) => (t === null ? '-' : new Date(t).toISOString());
        for (const t of tokens) io.stdout.write(`${t.id}\t${t.name}\t${t.role}\t${apiTokenStatus(t, Date.now())}\texpires ${iso(t.expires_at)}\tlast used ${iso(t.last_used_at)}\n`);
        if (!tokens.length) io.stderr.write('No API tokens yet: make one with latchkey api-tokens create.\n');
        return;
      }
      if (sub === 'revoke') {
        const [id, ...extra] = rest;
        if (!id || extra.length) fail('api-tokens revoke needs one ID (see latchkey api-tokens list)');
        const revoked = await withStore(config, (store) => revokeApiToken(store, id, Date.now(), { via: 'cli', audit: auditWithoutActor }));
        if (revoked === undefined) fail(`no API token has the id "${id}" (see latchkey api-tokens list)`);
        if (revoked === 'already') fail(`the API token "${id}" was already revoked`);
        io.stdout.write(`Revoked API token ${revoked.name} (${revoked.id}).\n`);
        return;
      }
      if (sub !== 'create') fail(`unknown api-tokens command "${sub ?? ''}"\n\n${usage}`);
      let values: { name?: string; role?: string; 'expires-days'?: string };
      try {
        values = parseArgs({ args: rest, options: { name: { type: 'string' }, role: { type: 'string' }, 'expires-days': { type: 'string' } }, strict: true, allowPositionals: false }).values;
      } catch (err) {
        fail(`${(err as Error).message}\n\n${usage}`);
      }
      const { isRole, ROLES } = await import('./admin/roles.js');
      if (!values.name) fail('api-tokens create needs --name');
      if (!values.role || !isRole(values.role)) fail(`--role must be one of ${ROLES.join(', ')}`);
      const daysText = values['expires-days'];
      const days = daysText === undefined ? API_TOKEN_DEFAULT_DAYS : /^[0-9]{1,4}$/.test(daysText) ? Number(daysText) : NaN;
      const problem = checkApiTokenFields({ name: values.name, days });
      if (problem) fail(`${problem.field === 'days' ? '--expires-days' : '--name'}: ${problem.message}`);
      const role = values.role;
      const made = await withStore(config, (store) => issueApiToken(store, { name: values.name!, role, days, createdBy: null, via: 'cli' }, Date.now(), { audit: auditWithoutActor }));
      io.stderr.write(`Created API token ${made.record.name} (id ${made.record.id}) acting as ${role}; it expires ${new Date(made.record.expires_at).toISOString()}.\n`);
      io.stderr.write('Copy it now: it is shown only once. Send it as "Authorization: Bearer <token>".\n');
      io.stdout.write(`${made.token}\n`);
      return;
    }
    case 'services': {
      if (sub === 'list') {
        const services = await withStore(config, (store) => store.services.list());
        for (const s of services) {
          io.stdout.write(`${s.client_id}\t${s.name}\t${s.client_type}\tAAL${s.aal}${s.first_party ? '\tfirst-party' : ''}\t${(JSON.parse(s.redirect_uris) as string[]).join(' ')}\n`);
        }
        return;
      }
      if (sub === 'remove') {
        const [clientId, ...extra] = rest;
        if (!clientId || extra.length) fail('services remove needs one CLIENT_ID (see latchkey services list)');
        const { removeService } = await import('./oidc/services.js');
        const removed = await withStore(config, async (store) => {
          const service = await removeService(store, clientId);
          if (service) {
            await store.audit.record({ at: Date.now(), event: 'service.removed', outcome: 'success', detail: { clientId: service.client_id, name: service.name, via: 'cli' } });
          }
          return service;
        });
        if (!removed) fail(`no service has the client id "${clientId}" (see latchkey services list)`);
        io.stdout.write(`Removed service ${removed.name} (${removed.client_id}).\n`);
        return;
      }
      if (sub !== 'add') fail(`unknown services command "${sub ?? ''}"\n\n${usage}`);
      let values: { name?: string; 'redirect-uri'?: string[]; 'logout-uri'?: string[]; public?: boolean; confidential?: boolean; aal?: string; 'first-party'?: boolean; 'id-token-alg'?: string };
      try {
        values = parseArgs({
          args: rest,
          options: {
            name: { type: 'string' },
            'redirect-uri': { type: 'string', multiple: true },
            'logout-uri': { type: 'string', multiple: true },
            public: { type: 'boolean' },
            confidential: { type: 'boolean' },
            aal: { type: 'string' },
            'first-party': { type: 'boolean' },
            'id-token-alg': { type: 'string' },
          },
          strict: true,
          allowPositionals: false,
        }).values;
      } catch (err) {
        fail(`${(err as Error).message}\n\n${usage}`);
      }
      if (!values.name) fail('services add needs --name');
      if (!values['redirect-uri']?.length) fail('services add needs at least one --redirect-uri');
      if (!!values.public === !!values.confidential) fail('services add needs exactly one of --public or --confidential');
      const aal = Number(values.aal ?? '2');
      if (![1, 2, 3].includes(aal)) fail('--aal must be 1, 2 or 3');
      const { addService, ServiceInputError } = await import('./oidc/services.js');
      const { SecretBox } = await import('./secretBox.js');
      const added = await withStore(config, (store) =>
        addService(
          store,
          new SecretBox(config),
          {
            name: values.name!,
            redirectUris: values['redirect-uri']!,
            postLogoutRedirectUris: values['logout-uri'] ?? [],
            clientType: values.public ? 'public' : 'confidential',
            aal: aal as 1 | 2 | 3,
            firstParty: !!values['first-party'],
            ...(values['id-token-alg'] ? { idTokenAlg: values['id-token-alg'] as SigningAlg } : {}),
          },
          Date.now(),
        ),
      ).catch((err: unknown) => {
        if (err instanceof ServiceInputError) fail(err.message);
        throw err;
      });
      io.stdout.write(`client_id=${added.service.client_id}\n`);
      if (added.clientSecret) {
        io.stdout.write(`client_secret=${added.clientSecret}\n`);
        io.stderr.write('The secret is shown only this once: store it in the service\'s configuration now.\n');
      }
      io.stderr.write(`Issuer: ${config.origin} (discovery at ${config.origin}/.well-known/openid-configuration)\n`);
      return;
    }
    case 'keys': {
      if (sub !== 'rotate') fail(`unknown keys command "${sub ?? ''}"\n\n${usage}`);
      const { rotateSigningKey } = await import('./oidc/signingKeys.js');
      const { SecretBox } = await import('./secretBox.js');
      const t = Date.now();
      const rotated = await withStore(config, (store) => rotateSigningKey(store, new SecretBox(config), t, config.oidcKeyRetireSeconds));
      io.stdout.write(`New signing keys ${rotated.kids.join(', ')} (one per algorithm).\n`);
      if (rotated.retired) io.stdout.write(`${rotated.retired} previous key(s) stay published until ${new Date(t + config.oidcKeyRetireSeconds * 1000).toISOString()}.\n`);
      io.stderr.write('Running servers start signing with the new key within a minute.\n');
      return;
    }
    case 'metadata': {
      if (sub !== 'import') fail(`unknown metadata command "${sub ?? ''}"\n\n${usage}`);
      const [file, ...extra] = rest;
      if (!file || extra.length) fail('metadata import needs one FILE: the BLOB (a JWT) downloaded from the FIDO Metadata Service');
      return importMetadataFile(config, io, file);
    }
    case 'doctor': {
      const { doctorReport } = await import('./oidc/doctor.js');
      const report = await withStore(config, (store) => doctorReport(config, store, Date.now()));
      io.stdout.write(report.text);
      return;
    }
    case 'help':
    case '--help':
    case '-h':
      io.stdout.write(usage + '\n');
      return;
    default:
      fail(`unknown command "${command}"\n\n${usage}`);
  }
}

/** `latchkey metadata import FILE`: what was kept, or why it was refused (exit 1, the previous BLOB untouched). */
async function importMetadataFile(config: Config, io: CliIo, file: string): Promise<void> {
  let blob: string;
  try {
    blob = readFileSync(file, 'utf8');
  } catch (err) {
    fail(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const [{ importMetadataBlob }, { MetadataBlobRefused }, { Trust }, { createMailer }] = await Promise.all([
    import('./webauthn/metadata/metadataStore.js'),
    import('./webauthn/metadata/verifyMetadataBlob.js'),
    import('./webauthn/trust.js'),
    import('./mail/createMailer.js'),
  ]);
  const mailer = createMailer(config);
  const log = { warn: (_obj: object, msg: string) => void io.stderr.write(`warning: ${msg}\n`) };
  try {
    const imported = await withStore(config, (store) => importMetadataBlob({ store, trust: new Trust(), config, mailer, log, now: Date.now }, blob, basename(file))).catch((err: unknown) => {
      if (err instanceof MetadataBlobRefused) fail(`refused ${file}: ${err.message}. The FIDO metadata in use is unchanged.`);
      throw err;
    });
    io.stdout.write(`Imported FIDO metadata: serial ${imported.serial}, next update ${imported.nextUpdate}, ${imported.entries} entries.\n`);
    for (const model of imported.newlyCompromised) io.stdout.write(`Newly marked ${model.compromised}: ${model.description} (${model.aaguid}).\n`);
    if (imported.passkeysFlagged) io.stdout.write(`${imported.passkeysFlagged} passkey(s) of those models: their owners were emailed and the audit log records each.\n`);
    io.stderr.write('Running servers use it within a minute.\n');
  } finally {
    await mailer.close();
  }
}

/** `latchkey users import FILE.csv`: check every row, write (unless refused or a dry run), then the report on stdout. */
async function importUsersFile(config: Config, io: CliIo, args: string[]): Promise<void> {
  let parsed: { values: { 'skip-invalid'?: boolean; 'dry-run'?: boolean; 'send-enrolment-email'?: boolean; template?: string }; positionals: string[] };
  try {
    parsed = parseArgs({
      args,
      options: { 'skip-invalid': { type: 'boolean' }, 'dry-run': { type: 'boolean' }, 'send-enrolment-email': { type: 'boolean' }, template: { type: 'string' } },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    fail(`${(err as Error).message}\n\n${usage}`);
  }
  const { values, positionals } = parsed;
  const [file, ...extra] = positionals;
  if (!file || extra.length) fail('users import needs one FILE.csv (or - for standard input)');
  if (values.template !== undefined && !values['send-enrolment-email']) fail('--template goes with --send-enrolment-email');
  let text: string;
  try {
    if (file === '-') {
      const chunks: Buffer[] = [];
      for await (const chunk of io.stdin ?? process.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      text = Buffer.concat(chunks).toString('utf8');
    } else text = readFileSync(file, 'utf8');
  } catch (err) {
    fail(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const fileName = file === '-' ? 'standard input' : basename(file);
  const [{ importUsers, ImportFileError }, { describeImportReport }, { createMailer }, { createProgress }] = await Promise.all([
    import('./users/import/importUsers.js'),
    import('./users/import/describeImportReport.js'),
    import('./mail/createMailer.js'),
    import('./users/import/importProgress.js'),
  ]);
  const mailer = values['send-enrolment-email'] ? createMailer(config) : undefined;
  const progress = createProgress(io.stderr);
  try {
    const report = await withStore(config, async (store) => {
      let enrolmentEmail: { template: EmailTemplate; lifetimeSeconds: number } | undefined;
      if (values['send-enrolment-email']) {
        const template = values.template === undefined ? await store.emailTemplates.findDefault() : await store.emailTemplates.findById(values.template);
        if (!template) fail(values.template === undefined ? 'there is no default email template yet: start the server once, or pass --template ID' : `no email template has the id "${values.template}" (see Email templates in the console)`);
        enrolmentEmail = { template, lifetimeSeconds: config.inviteSeconds };
      }
      const secret = await store.settings.getOrInsert('server_secret', randomToken(32));
      return importUsers({ store, config, secret, now: Date.now, mailer }, text, {
        fileName,
        skipInvalid: values['skip-invalid'],
        dryRun: values['dry-run'],
        enrolmentEmail,
        // The command line is the operator's: it may grant any role, as admin bootstrap does.
        canGrantRoles: true,
        actor: { userId: null, ip: null, userAgent: null },
        source: 'cli',
        onProgress: progress.update,
      }).catch((err: unknown) => {
        if (err instanceof ImportFileError) fail(`${fileName}: ${err.message} Nothing was imported.`);
        throw err;
      });
    });
    progress.stop();
    io.stdout.write(describeImportReport(report, fileName, values['dry-run']));
    if (report.refusedLines && !report.written) {
      fail(
        values['dry-run']
          ? `${report.refusedLines} line(s) would be refused.`
          : `nothing was imported: ${report.refusedLines} line(s) refused. Correct them, or run again with --skip-invalid to import the ${report.created} valid new user(s).`,
      );
    }
  } finally {
    progress.stop();
    await mailer?.close();
  }
}

/** The first RA Manager: refused once any manager exists, so this can't be used to take over a running console. */
async function bootstrapManager(store: Store, config: Config, email: string, name: string) {
  const t = Date.now();
  if ((await store.roles.count('ra_manager')) > 0) {
    throw new UserInputError('an RA Manager already exists: ask them to grant roles in the console (/admin)');
  }
  let user = await store.users.findByEmail(email);
  const created = !user;
  if (!user) user = await createUser(store, { email, displayName: name }, t);
  const subject = user;
  await store.transaction(async (tx) => {
    await tx.roles.set(subject.id, ['ra_manager', ...(await tx.roles.listForUser(subject.id)).filter((r) => r !== 'ra_manager')], null, t);
    await tx.audit.record({ at: t, event: 'admin.bootstrap', outcome: 'success', subjectUserId: subject.id, detail: { via: 'cli' } });
  });
  const invite = await issueInvite(store, config, subject, t, { method: 'cli' });
  return { created, url: invite.url, expiresAt: invite.expiresAt };
}

/**
 * The --national-id value normalised and checked with the console's rules (LATCHKEY_NATIONAL_ID_*), or a one-line
 * error; returns how to hash it once the server secret is read.
 */
function checkNationalId(config: Config, raw: string): (secret: string) => string {
  const format = nationalIdFormat(config);
  const normalised = format.normalise(raw);
  if (!normalised) fail(`--national-id needs a value: the person's ${format.label}`);
  const problem = format.check(normalised);
  if (problem) fail(`--national-id: ${problem}`);
  return (secret) => hashNationalId(secret, normalised);
}

function mapUserError(err: unknown): never {
  if (err instanceof UserInputError) fail(err.message);
  throw err;
}

/**
 * Run one `latchkey` command and return its exit code: 0, 1 (usage or input) or 2 (configuration). Problems are
 * written to `io.stderr` as one line. `serve` returns once it is listening and keeps serving.
 * Tests call this in the test process; the bin and `node src/main.ts` call {@link runAsProgram}.
 */
export async function runCli(argv: string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  try {
    await main(argv, io);
    return 0;
  } catch (err) {
    // A setting found wrong only once the data is read (a secret key that opens nothing stored) is still a setting.
    if (err instanceof ConfigError) {
      io.stderr.write(`latchkey: configuration error: ${err.message}\n`);
      return 2;
    }
    io.stderr.write(`latchkey: ${err instanceof Error ? err.message : String(err)}\n`);
    return err instanceof CliExit ? err.exitCode : 1;
  }
}

/** The command line as a process: argv from the process, and a failure ends it with its exit code. */
export async function runAsProgram(): Promise<void> {
  // `latchkey users list | head` closes the pipe early: that is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const code = await runCli(process.argv.slice(2));
  // A finished command lets the event loop drain (serve keeps it busy); a failed one stops here.
  if (code !== 0) process.exit(code);
}

// Run as the entry point (`node --import tsx src/main.ts`, as npm start does); imported, by bin/latchkey.js or a test, it only exports.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(resolve(process.argv[1]))).href) void runAsProgram();
