/** Progress of a command-line import on stderr: a bar (cli-progress) at a terminal, otherwise a line every tenth. */
import cliProgress from 'cli-progress';
import type { ImportProgress } from './importUsers.js';

const phaseWords: Record<ImportProgress['phase'], string> = { writing: 'Writing users', emailing: 'Sending enrolment emails' };

export function createProgress(stderr: { write(text: string): unknown; isTTY?: boolean }): { update: (p: ImportProgress) => void; stop: () => void } {
  if (stderr.isTTY) {
    let bar: cliProgress.SingleBar | undefined;
    let phase: ImportProgress['phase'] | undefined;
    const stop = () => {
      bar?.stop();
      bar = undefined;
    };
    return {
      update: (p) => {
        if (p.phase !== phase) {
          stop();
          phase = p.phase;
          bar = new cliProgress.SingleBar(
            { format: `${phaseWords[p.phase]} [{bar}] {percentage}% | {value}/{total} | {eta_formatted} left`, stream: stderr as NodeJS.WritableStream, hideCursor: true },
            cliProgress.Presets.shades_classic,
          );
          bar.start(p.total, 0);
        }
        bar!.update(p.done);
      },
      stop,
    };
  }
  let reported = { phase: '', tenth: -1 };
  return {
    update: (p) => {
      const tenth = Math.floor((p.done / Math.max(p.total, 1)) * 10);
      if (p.phase === reported.phase && tenth === reported.tenth) return;
      reported = { phase: p.phase, tenth };
      stderr.write(`${phaseWords[p.phase]}: ${p.done.toLocaleString('en-GB')} of ${p.total.toLocaleString('en-GB')}\n`);
    },
    stop: () => {},
  };
}
