import { readdir, readFile, realpath, stat } from "node:fs/promises";
import { join } from "node:path";
import { LineCounter, isMap, isScalar, isSeq, parseAllDocuments, type Document, type Node } from "yaml";

// Reading manifests for `healthgate lint`: files, directories (recursive
// *.yaml, *.yml, *.json) and stdin, each holding any number of YAML documents
// (JSON is YAML). Every object keeps where it came from, so a finding can
// point at the line of the field it is about.

export type PathSegment = string | number;

export interface ManifestObject {
  file: string;
  /** 1-based line of the object's first key. */
  line: number;
  object: Record<string, unknown>;
  /** 1-based line of the field at `path` (relative to the object), or of its nearest ancestor that exists. */
  lineOf: (path: readonly PathSegment[]) => number;
}

/** Input that cannot be read or parsed; lint exits 2. */
export interface InputError {
  file: string;
  line?: number;
  message: string;
}

export interface Source {
  file: string;
  text: string;
}

const MANIFEST_EXTENSIONS = /\.(ya?ml|json)$/i;

/**
 * Limits for untrusted input (a pull request's manifests): a file larger than this is not read,
 * a document larger than this is not parsed — the API server refuses request bodies above 3 MiB,
 * so no real object comes close — and a document may use at most this many aliases (the `yaml`
 * library's guard against "billion laughs" expansion).
 */
export const MAX_FILE_BYTES = 32 * 1024 * 1024;
export const MAX_DOCUMENT_BYTES = 3 * 1024 * 1024;
export const MAX_ALIAS_COUNT = 100;

const MIB = 1024 * 1024;

/**
 * Expands arguments into sources: "-" is stdin, directories are walked in name order. Symbolic
 * links are followed, but never into a directory (or file) the walk has already visited, so a
 * link loop (`ln -s . loop`) ends instead of walking forever.
 */
export async function readSources(
  inputs: readonly string[],
  readStdin: () => Promise<string>,
): Promise<{ sources: Source[]; errors: InputError[] }> {
  const sources: Source[] = [];
  const errors: InputError[] = [];
  const visited = new Set<string>();
  const visit = async (path: string, explicit: boolean): Promise<void> => {
    try {
      const info = await stat(path);
      if (!info.isDirectory() && !explicit && !MANIFEST_EXTENSIONS.test(path)) return;
      const real = await realpath(path);
      if (visited.has(real)) return;
      visited.add(real);
      if (info.isDirectory()) {
        const entries = (await readdir(path)).sort();
        for (const entry of entries) await visit(join(path, entry), false);
      } else if (info.size > MAX_FILE_BYTES) {
        errors.push({
          file: path,
          message: `${path} is ${(info.size / MIB).toFixed(1)} MiB, above the ${MAX_FILE_BYTES / MIB} MiB a manifest file may have; split it or lint the part that holds workloads`,
        });
      } else {
        sources.push({ file: path, text: await readFile(path, "utf8") });
      }
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const reason =
        code === "ENOENT"
          ? "no such file or directory"
          : code === "EACCES"
            ? "permission denied"
            : code === "ELOOP"
              ? "too many levels of symbolic links"
              : String(error);
      errors.push({ file: path, message: `cannot read ${path}: ${reason}` });
    }
  };
  for (const input of inputs) {
    if (input === "-") sources.push({ file: "<stdin>", text: await readStdin() });
    else await visit(input, true);
  }
  return { sources, errors };
}

/** The objects of one source; `kind: List` documents are expanded into their items. */
export function parseSource(source: Source): { objects: ManifestObject[]; errors: InputError[] } {
  const lineCounter = new LineCounter();
  const documents = parseAllDocuments(source.text, { lineCounter });
  const objects: ManifestObject[] = [];
  const errors: InputError[] = [];
  const lineAt = (offset: number) => lineCounter.linePos(offset).line;

  for (const doc of Array.isArray(documents) ? documents : [documents]) {
    const [start = 0, , end = start] = doc.range;
    if (end - start > MAX_DOCUMENT_BYTES) {
      errors.push({
        file: source.file,
        line: lineAt(start),
        message: `a document of ${((end - start) / MIB).toFixed(1)} MiB, above the ${MAX_DOCUMENT_BYTES / MIB} MiB the API server accepts for one object; not linted`,
      });
      continue;
    }
    if (doc.errors.length > 0) {
      for (const error of doc.errors) {
        errors.push({
          file: source.file,
          line: error.linePos?.[0].line,
          message: `invalid YAML: ${firstLine(error.message)}`,
        });
      }
      continue;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (error) {
      // The yaml library throws on alias expansion beyond maxAliasCount (a "billion laughs" document).
      errors.push({
        file: source.file,
        line: lineAt((doc.contents as Node | null)?.range?.[0] ?? start),
        message: `document not linted: ${firstLine((error as Error).message)}${/alias count/i.test((error as Error).message) ? ` (at most ${MAX_ALIAS_COUNT} alias expansions per document)` : ""}`,
      });
      continue;
    }
    if (value === null || value === undefined) continue;
    const at = (base: readonly PathSegment[], object: Record<string, unknown>): ManifestObject => ({
      file: source.file,
      line: locate(doc, base, lineAt),
      object,
      lineOf: (path) => locate(doc, [...base, ...path], lineAt),
    });
    if (!isObject(value)) {
      errors.push({
        file: source.file,
        line: locate(doc, [], lineAt),
        message: "a document is not a Kubernetes object (expected a mapping)",
      });
      continue;
    }
    if (value["kind"] === "List" && Array.isArray(value["items"])) {
      value["items"].forEach((item, index) => {
        if (isObject(item)) objects.push(at(["items", index], item));
      });
    } else {
      objects.push(at([], value));
    }
  }
  return { objects, errors };
}

/** The yaml library's first message line, without its own "at line L, column C" (lint prints file:line). */
const firstLine = (message: string) =>
  (message.split("\n", 1)[0] ?? message).replace(/ at line \d+, column \d+:?$/, "");

export const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Line of the deepest node along `path` that exists: a mapping entry's key line, a sequence item's line. */
function locate(doc: Document, path: readonly PathSegment[], lineAt: (offset: number) => number): number {
  let node: unknown = doc.contents;
  let offset = (doc.contents as Node | null)?.range?.[0] ?? 0;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === segment);
      if (!pair) break;
      offset = (pair.key as Node | null)?.range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === "number") {
      const item = node.items[segment] as Node | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return lineAt(offset);
}
