/**
 * Where a process's resident memory goes, for the benchmark's server (bench/server.ts answers `memory` with this).
 *
 * Three views that add up differently, so the report gives all three:
 * - V8: each heap space's committed and used size, after a full collection (what the JavaScript keeps alive);
 * - process.memoryUsage(): heap, external (native memory V8 objects own: Buffers, KeyObjects) and ArrayBuffers;
 * - /proc/self/smaps: the kernel's resident pages by mapping: code and data of each shared library and native
 *   addon, glibc's main heap ([heap]), thread stacks, and anonymous mappings (V8's heap pages of every isolate,
 *   each thread's glibc malloc arena, SQLite's page cache) — Linux only.
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
  // Twice: the first run's finalizers (KeyObjects, Buffers) free native memory the second one sees gone.
  fullGc();
  await new Promise((resolve) => setImmediate(resolve));
  fullGc();
  const snapshot = snapshotFile ? v8.writeHeapSnapshot(snapshotFile) : undefined;
  return {
    usage: process.memoryUsage(),
    rssBeforeGc,
    spaces: v8.getHeapSpaceStatistics().map((s) => ({ name: s.space_name, committed: s.space_size, used: s.space_used_size })),
    mappings: residentByMapping(),
    threads: threadNames(),
    snapshot,
  };
}

/**
 * /proc/self/smaps summed by what each mapping is: a file's base name (code and data of node, libc, addons such as
 * better_sqlite3.node), [heap], [stack], or "anonymous" split by size, since V8 reserves its heap in 256 KiB pages
 * and large-object chunks while glibc gives each thread's malloc arena a 64 MiB reservation.
 */
function residentByMapping(): MemoryBreakdown['mappings'] {
  let text: string;
  try {
    text = readFileSync('/proc/self/smaps', 'utf8');
  } catch {
    return [];
  }
  const totals = new Map<string, { rss: number; count: number }>();
  const large: string[] = [];
  let name = '';
  let size = 0;
  for (const line of text.split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      const [start, end] = line.split(' ')[0]!.split('-').map((h) => parseInt(h, 16));
      size = end! - start!;
      const path = header[2]!.trim();
      if (!path) name = size >= 60 * 2 ** 20 ? 'anonymous, 60 MiB and over (malloc arenas)' : 'anonymous, under 60 MiB (V8 heaps, mmap)';
      else if (path.startsWith('[')) name = path;
      else name = `${basename(path)}${header[1]!.includes('x') ? ' (code)' : ' (data)'}`;
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && Number(rss[1]) > 0) {
      const t = totals.get(name) ?? { rss: 0, count: 0 };
      t.rss += Number(rss[1]) * 1024;
      t.count++;
      totals.set(name, t);
    }
  }
  return [...totals].map(([n, t]) => ({ name: n, ...t })).sort((a, b) => b.rss - a.rss);
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
