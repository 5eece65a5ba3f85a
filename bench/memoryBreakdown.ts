/**
 * Where a process's resident memory goes, for the benchmark's server (bench/server.ts answers `memory` with this).
 *
 * Three views that add up differently, so the report gives all three:
 * - V8: each heap space's committed and used size, after a full collection (what the JavaScript keeps alive);
 * - process.memoryUsage(): heap, external (native memory V8 objects own: Buffers, KeyObjects) and ArrayBuffers;
 * - /proc/self/smaps: the kernel's resident pages by mapping: code and data of each shared library and native
 *   addon, glibc's main heap ([heap]), and anonymous mappings: glibc's thread arenas, thread stacks, and the rest
 *   (V8's heap pages of every isolate, SQLite's page cache) — Linux only.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface MemoryBreakdown {
  /** process.memoryUsage() in bytes, after a full GC. */
  usage: NodeJS.MemoryUsage;
  /** RSS before the GC, bytes. */
  rssBeforeGc: number;
  /** Before the GC: the main heap's committed size (process.memoryUsage().heapTotal) and resident bytes by mapping. */
  heapTotalBeforeGc: number;
  mappingsBeforeGc: { name: string; rss: number; count: number }[];
  /** V8 heap spaces of the main isolate: committed (space_size) and live (space_used_size), bytes. */
  spaces: { name: string; committed: number; used: number }[];
  /** Resident bytes by mapping (Linux; empty elsewhere), largest first. */
  mappings: { name: string; rss: number; count: number }[];
  /** Threads by name (Linux). */
  threads: Record<string, number>;
  snapshot?: string;
}

let gc: (() => void) | undefined;
function fullGc(): void {
  if (!gc) {
    v8.setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}

export async function memoryBreakdown(snapshotFile?: string): Promise<MemoryBreakdown> {
  const rssBeforeGc = process.memoryUsage.rss();
  const heapTotalBeforeGc = process.memoryUsage().heapTotal;
  const mappingsBeforeGc = residentByMapping();
  // Twice: the first run's finalizers (KeyObjects, Buffers) free native memory the second one sees gone.
  fullGc();
  await new Promise((resolve) => setImmediate(resolve));
  fullGc();
  const snapshot = snapshotFile ? v8.writeHeapSnapshot(snapshotFile) : undefined;
  return {
    usage: process.memoryUsage(),
    rssBeforeGc,
    heapTotalBeforeGc,
    mappingsBeforeGc,
    spaces: v8.getHeapSpaceStatistics().map((s) => ({ name: s.space_name, committed: s.space_size, used: s.space_used_size })),
    mappings: residentByMapping(),
    threads: threadNames(),
    snapshot,
  };
}

/** glibc gives each thread's malloc arena heaps of this size, aligned to it (HEAP_MAX_SIZE on 64-bit). */
const ARENA_HEAP = 64 * 2 ** 20;

/**
 * /proc/self/smaps summed by what each mapping is: a file's base name (code and data of node, libc, addons such as
 * better_sqlite3.node), [heap] (glibc's main arena: the main thread's malloc), [stack], and anonymous mappings split
 * three ways: glibc's thread arenas (each a 64 MiB-aligned 64 MiB reservation, resident part first, the rest
 * PROT_NONE: the malloc of worker threads, libuv's thread pool and V8's helper threads, OpenSSL keys imported on the
 * signature worker among it), thread stacks (writable, below a 4 KiB guard page) and the rest (V8's heaps of every
 * isolate, its code space, SQLite's page cache and other direct mmaps).
 */
function residentByMapping(): MemoryBreakdown['mappings'] {
  let text: string;
  try {
    text = readFileSync('/proc/self/smaps', 'utf8');
  } catch {
    return [];
  }
  const maps: { start: number; end: number; perms: string; path: string; rss: number }[] = [];
  for (const line of text.split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      maps.push({ start: parseInt(header[1]!, 16), end: parseInt(header[2]!, 16), perms: header[3]!, path: header[4]!.trim(), rss: 0 });
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && maps.length) maps[maps.length - 1]!.rss = Number(rss[1]) * 1024;
  }
  const totals = new Map<string, { rss: number; count: number }>();
  let arenaEnd = 0;
  maps.forEach((m, i) => {
    let name: string;
    if (m.path.startsWith('[')) name = m.path;
    else if (m.path) name = `${basename(m.path)}${m.perms.includes('x') ? ' (code)' : ' (data)'}`;
    else {
      if (m.start % ARENA_HEAP === 0 && isArenaHeap(maps, i)) arenaEnd = m.start + ARENA_HEAP;
      const previous = maps[i - 1];
      if (m.start < arenaEnd) name = 'anonymous: malloc arenas of threads';
      else if (previous && previous.end === m.start && previous.perms.startsWith('---') && previous.end - previous.start === 4096 && !m.perms.includes('x')) name = 'anonymous: thread stacks';
      else name = 'anonymous: V8 heaps, code, other mmap';
    }
    if (m.rss === 0) return;
    const t = totals.get(name) ?? { rss: 0, count: 0 };
    t.rss += m.rss;
    t.count++;
    totals.set(name, t);
  });
  return [...totals].map(([n, t]) => ({ name: n, ...t })).sort((a, b) => b.rss - a.rss);
}

/** Anonymous mappings from maps[i] on that are contiguous and exactly fill one 64 MiB arena heap. */
function isArenaHeap(maps: { start: number; end: number; path: string }[], i: number): boolean {
  const start = maps[i]!.start;
  let end = start;
  for (let j = i; j < maps.length && maps[j]!.start === end && !maps[j]!.path; j++) {
    end = maps[j]!.end;
    if (end - start >= ARENA_HEAP) break;
  }
  return end - start === ARENA_HEAP;
}

function threadNames(): Record<string, number> {
  const names: Record<string, number> = {};
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      const name = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      names[name] = (names[name] ?? 0) + 1;
    }
  } catch {
    // not Linux
  }
  return names;
}
