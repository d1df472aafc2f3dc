// What a scenario hands back: its table rows, its notes and its fields of the
// JSON line; and the printing of them (the table, then the JSON as the last
// line, which scripts read with `npm run bench | tail -1`).

/** One line of the table: a figure, its value and, when it has one, its target and whether it was met. */
export interface Row {
  what: string;
  value: string;
  target?: string;
  met?: boolean;
}

/** The fields of the JSON line (null: not measured in this scenario). */
export type Result = Record<string, number | string | null>;

/** A scenario's rows, notes and JSON fields, in the order it measured them. */
export interface Figures {
  rows: Row[];
  notes: string[];
  result: Result;
}

/** Empty figures, to add to. */
export const figures = (result: Result = {}): Figures => ({ rows: [], notes: [], result });

/** Appends `more` to `into` (rows and notes after its own, JSON fields assigned in order). */
export function add(into: Figures, more: Figures): void {
  into.rows.push(...more.rows);
  into.notes.push(...more.notes);
  Object.assign(into.result, more.result);
}

/** A figure for the table: fixed digits, "n/a" for NaN and infinities. */
export function fmt(x: number, digits = 2): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "n/a";
}

/** Prints `header`, the rows as a table and the notes, then the JSON fields as one line. */
export function print(header: string, f: Figures): void {
  const w0 = Math.max(...f.rows.map((r) => r.what.length), 10);
  const w1 = Math.max(...f.rows.map((r) => r.value.length), 8);
  const lines = [
    header,
    "",
    `${"figure".padEnd(w0)}  ${"value".padStart(w1)}  target`,
    `${"-".repeat(w0)}  ${"-".repeat(w1)}  ------------`,
  ];
  for (const r of f.rows) {
    const mark = r.met === undefined ? "" : r.met ? "  met" : "  MISSED";
    lines.push(`${r.what.padEnd(w0)}  ${r.value.padStart(w1)}  ${r.target ?? ""}${mark}`);
  }
  for (const n of f.notes) lines.push(`note: ${n}`);
  process.stdout.write(`${lines.join("\n")}\n`);
  process.stdout.write(`${JSON.stringify(f.result)}\n`);
}
