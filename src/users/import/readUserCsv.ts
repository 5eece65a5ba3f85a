/**
 * Reading a bulk-import CSV file (csv-parse): a header row naming the columns, then one person per line. The header
 * is matched case-insensitively with the spellings people use; a file without a name or email column, or with a
 * column we would otherwise ignore, is refused before any row is read, so a misspelt column never drops data quietly.
 */
import { CsvError, parse } from 'csv-parse/sync';
import type { NationalIdFormat } from '../nationalId.js';

/** The columns Latchkey reads, by their field names (the ones checkNewUser reports problems at). */
export type ImportColumn = 'name' | 'email' | 'nationalId' | 'roles';

/** One data row as written in the file, with the line it starts on (1 is the header). */
export interface CsvUserRow {
  line: number;
  name: string;
  email: string;
  /** '' when the column is absent or the cell empty. */
  nationalId: string;
  roles: string;
}

export interface UserCsv {
  rows: CsvUserRow[];
  /** The header cells as the file spells them, per column present: problems are reported under these names. */
  headers: Partial<Record<ImportColumn, string>>;
}

/** The whole file cannot be read (no header, a missing column, a quote never closed): nothing in it is imported. */
export class ImportFileError extends Error {}

/** Lower case, with spaces, underscores, hyphens and dots all one space: "National_Insurance-Number" → "national insurance number". */
function headerKey(cell: string): string {
  return cell
    .trim()
    .toLowerCase()
    .replace(/[\s_.-]+/g, ' ')
    .trim();
}

const SPELLINGS: Record<ImportColumn, readonly string[]> = {
  name: ['name', 'full name', 'display name'],
  email: ['email', 'email address', 'e mail', 'e mail address'],
  nationalId: ['national insurance number', 'nino', 'ni number', 'national id', 'national identifier'],
  roles: ['roles', 'role'],
};

/** The header spellings accepted for each column; the deployment's own identifier label (LATCHKEY_NATIONAL_ID_LABEL) too. */
export function headerSpellings(format: NationalIdFormat): Record<ImportColumn, readonly string[]> {
  const label = headerKey(format.label);
  return { ...SPELLINGS, nationalId: SPELLINGS.nationalId.includes(label) ? SPELLINGS.nationalId : [label, ...SPELLINGS.nationalId] };
}

/** The example file offered for download and shown in the README. */
export function exampleUserCsv(format: NationalIdFormat): string {
  const id = format.label;
  return `name,email,${id},roles\r\nAda Lovelace,ada.lovelace@example.org,QQ 12 34 56 C,\r\nGrace Hopper,grace.hopper@example.org,,ra_agent\r\nAlan Turing,alan.turing@example.org,,\r\n`;
}

/** Newlines inside a record's quoted fields: the record starts this many lines before the line it ends on. */
function newlinesIn(record: string[]): number {
  let n = 0;
  for (const field of record) for (let i = field.indexOf('\n'); i !== -1; i = field.indexOf('\n', i + 1)) n++;
  return n;
}

/**
 * Read the file's header and rows. Empty lines and lines of empty cells are skipped; a row with more cells than the
 * header keeps its line number and is refused by the plan (`extraCells`). Throws ImportFileError for the file as a whole.
 */
export function readUserCsv(text: string, format: NationalIdFormat): UserCsv & { extraCells: number[] } {
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text, { bom: true, info: true, skip_empty_lines: true, relax_column_count: true }) as unknown as typeof records;
  } catch (err) {
    if (err instanceof CsvError) {
      const line = (err as CsvError & { lines?: number }).lines;
      throw new ImportFileError(`The file is not a CSV file we can read${line ? ` (line ${line})` : ''}: ${err.message.replace(/^Invalid Record Length: |^Quote Not Closed: /, '')}`);
    }
    throw err;
  }
  const [header, ...data] = records;
  if (!header) throw new ImportFileError('The file is empty. It needs a header row (name,email…) and a line for each person.');

  const spellings = headerSpellings(format);
  const columnOf = new Map<string, ImportColumn>();
  for (const [column, names] of Object.entries(spellings) as [ImportColumn, readonly string[]][]) for (const n of names) columnOf.set(n, column);
  const headers: Partial<Record<ImportColumn, string>> = {};
  const index: Partial<Record<ImportColumn, number>> = {};
  header.record.forEach((cell, i) => {
    const column = columnOf.get(headerKey(cell));
    if (!column) {
      if (!cell.trim()) throw new ImportFileError(`Column ${i + 1} of the header row is empty. Name every column, or remove the empty one.`);
      throw new ImportFileError(
        `The header row has a column we do not recognise: “${cell.trim().slice(0, 60)}”. Use name, email, ${spellings.nationalId[0]} and roles (the last two are optional), or remove the column.`,
      );
    }
    if (index[column] !== undefined) throw new ImportFileError(`The header row has two ${spellings[column][0]} columns (“${headers[column]}” and “${cell.trim()}”). Keep one.`);
    index[column] = i;
    headers[column] = cell.trim();
  });
  const missing = (['name', 'email'] as const).filter((c) => index[c] === undefined);
  if (missing.length) {
    throw new ImportFileError(`The header row must have ${missing.map((c) => (c === 'email' ? 'an email column' : 'a name column')).join(' and ')}. The first line of the file names the columns, for example: name,email`);
  }

  const width = header.record.length;
  const cell = (record: string[], column: ImportColumn) => {
    const i = index[column];
    return i === undefined ? '' : (record[i] ?? '');
  };
  const rows: CsvUserRow[] = [];
  const extraCells: number[] = [];
  for (const { record, info } of data) {
    if (record.every((c) => !c.trim())) continue;
    const line = info.lines - newlinesIn(record);
    // More cells than columns: a comma in an unquoted name, most likely; the row is refused, not guessed at.
    if (record.length > width && record.slice(width).some((c) => c.trim())) extraCells.push(line);
    rows.push({ line, name: cell(record, 'name'), email: cell(record, 'email'), nationalId: cell(record, 'nationalId'), roles: cell(record, 'roles') });
  }
  return { rows, headers, extraCells };
}
