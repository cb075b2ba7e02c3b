// One copy of each often-repeated string a cache holds. JSON.parse makes a new string for every
// value it reads, so 10,000 cached pods held 10,000 copies each of "ReplicaSet", "Ready",
// "True", their node's name, their ReplicaSet's name and uid (about 10 MiB of V8 heap in
// bench/memory.ts, found by a heap snapshot). The transforms (world.ts) pass low-cardinality
// fields through `intern`; names and uids unique to one object, and timestamps, are left alone.
// The table is bounded: once full, new strings pass through uncopied.
const MAX_ENTRIES = 50_000;
const MAX_LENGTH = 256;
const table = new Map<string, string>();

export function intern<S extends string | undefined>(value: S): S {
  if (value === undefined || value.length > MAX_LENGTH) return value;
  const known = table.get(value);
  if (known !== undefined) return known as S;
  if (table.size < MAX_ENTRIES) table.set(value, value);
  return value;
}
