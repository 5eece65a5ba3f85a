import { openDatabase } from '../src/db/connect.js';
import { insertUsers, makeUsers } from './seed.js';
import { freePort, ServerProcess } from './serverProcess.js';
import { runLoad } from './load.js';
const port = await freePort();
const origin = `http://localhost:${port}`;
const { users, rows } = makeUsers(10000, origin, 'localhost');
const url = 'sqlite:/tmp/scratch/bench.db';
const db = openDatabase(url); await db.migrate(); await insertUsers(db, rows); await db.close();
const s = await ServerProcess.start(url, port, origin, JSON.parse(process.env.EXTRA ?? '{}'));
console.log('PID', (s as any).child.pid);
const load = Number(process.env.LOAD_SECONDS ?? 0);
if (load) { const r = await runLoad({ port, origin, users, concurrency: 16, warmupMs: 1000, durationMs: load * 1000 }); console.log('ceremonies', (r as any).ceremonies); }
console.log('READY');
await new Promise((r) => setTimeout(r, Number(process.env.HOLD ?? 60) * 1000));
await s.stop();
