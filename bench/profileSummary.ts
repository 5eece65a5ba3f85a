/**
 * Summarise a V8 CPU profile (.cpuprofile from `npm run bench -- --profile`):
 * self time by function and by package, highest first. Given a .heapprofile (BENCH_ALLOCATIONS=1 beside --profile,
 * bench/server.ts), what was allocated in the window, by package and by function, with where the top sites are
 * called from.
 * Usage: node --import tsx bench/profileSummary.ts <file.cpuprofile|file.heapprofile> [rows]
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const [file, rowsArg] = process.argv.slice(2);
if (!file) throw new Error('usage: profileSummary.ts <file.cpuprofile|file.heapprofile> [rows]');
const rows = Number(rowsArg ?? 30);

interface AllocationNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: AllocationNode[];
}

if (file.endsWith('.heapprofile')) {
  const root = (JSON.parse(readFileSync(file, 'utf8')) as { head: AllocationNode }).head;
  const byPackage = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let bytes = 0;
  const visit = (n: AllocationNode, caller: string) => {
    const name = `${n.callFrame.functionName || '(anonymous)'}  ${n.callFrame.url ? `${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}` : caller}`;
    bytes += n.selfSize;
    byPackage.set(where(n.callFrame.url), (byPackage.get(where(n.callFrame.url)) ?? 0) + n.selfSize);
    byFunction.set(name, (byFunction.get(name) ?? 0) + n.selfSize);
    for (const child of n.children) visit(child, n.callFrame.url ? `(from ${n.callFrame.functionName || '(anonymous)'} in ${where(n.callFrame.url)})` : caller);
  };
  visit(root, '(native)');
  const share = (b: number) => `${((b / bytes) * 100).toFixed(1).padStart(5)} %`;
  console.log(`${file}: ${(bytes / 1048576).toFixed(1)} MiB allocated (sampled; divide by the window's requests for a figure per request)`);
  console.log('\nallocated by package / file');
  for (const [k, b] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, rows)) console.log(`${share(b)}  ${k}`);
  console.log('\nallocated by function');
  for (const [k, b] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, rows)) console.log(`${share(b)}  ${k}`);
  process.exit(0);
}

const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const self = new Map<number, number>();
profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const total = [...self.values()].reduce((a, b) => a + b, 0);

function where(url: string): string {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  if (url.startsWith('node:')) return url;
  const src = /\/(src|bench|test)\/(.+)$/.exec(url);
  return src ? `${src[1]}/${src[2]}` : url || '(native)';
}

function tally(key: (n: Node) => string): [string, number][] {
  const m = new Map<string, number>();
  for (const [id, t] of self) {
    const k = key(byId.get(id)!);
    m.set(k, (m.get(k) ?? 0) + t);
  }
  return [...m].sort((a, b) => b[1] - a[1]);
}

// Inclusive time of frames whose name matches, counted once per sample.
function inclusive(match: (n: Node) => boolean): number {
  let t = 0;
  profile.samples.forEach((id, i) => {
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      if (match(byId.get(cur)!)) {
        t += profile.timeDeltas[i] ?? 0;
        break;
      }
    }
  });
  return t;
}

const pct = (t: number) => `${((t / total) * 100).toFixed(1).padStart(5)} %`;
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled`);
console.log('\nself time by package / file');
for (const [k, t] of tally((n) => where(n.callFrame.url)).slice(0, rows)) console.log(`${pct(t)}  ${k}`);
// Native frames have no file; name them by their JS caller (better-sqlite3's and node:crypto's `run` are both "run").
function label(n: Node): string {
  const name = n.callFrame.functionName || '(anonymous)';
  if (n.callFrame.url) return `${name}  ${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
  for (let cur = parent.get(n.id); cur !== undefined; cur = parent.get(cur)) {
    const f = byId.get(cur)!.callFrame;
    if (f.url) return `${name} (native, from ${f.functionName || '(anonymous)'} in ${where(f.url)})`;
  }
  return `${name} (native)`;
}

console.log('\nself time by function');
for (const [k, t] of tally(label).slice(0, rows)) {
  console.log(`${pct(t)}  ${k}`);
}
console.log('\ninclusive time');
for (const name of ['verifyAssertion', 'credentialVerifierFromCose', 'verifyAssertionWithLibrary', 'verifyAuthenticationResponse', 'importKey', 'finishAuthentication', 'startAuthentication', 'startSession', 'audit']) {
  console.log(`${pct(inclusive((n) => n.callFrame.functionName === name))}  ${name}`);
}
console.log(`${pct(inclusive((n) => n.callFrame.url.includes('better-sqlite3') || n.callFrame.url.includes('kysely')))}  kysely + better-sqlite3`);
console.log(`${pct(inclusive((n) => n.callFrame.functionName === '(garbage collector)'))}  (garbage collector)`);
