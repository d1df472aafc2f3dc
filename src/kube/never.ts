// The `default` of an exhaustive switch over a union's `kind`: tsc rejects the
// call while a case is missing, so adding a variant makes the compiler list
// every switch that must handle it.

/**
 * Marks a switch as exhaustive. Never returns: a value that reaches it at run
 * time (an untyped object) throws, naming its `kind` and what it was meant to be.
 */
export function assertNever(value: never, what: string): never {
  const kind = (value as { kind?: unknown } | null)?.kind;
  throw new Error(`unhandled ${what}: ${typeof kind === "string" ? kind : typeof value}`);
}
