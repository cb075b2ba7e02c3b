import { readFileSync, writeFileSync } from "node:fs";
import { relative } from "node:path";

// Write a generated file, or with --check compare it and exit 1 on drift, so
// the verify step fails when someone edits the source but not the output.

export function writeOrCheck(path: string, content: string, argv: readonly string[]): void {
  const shown = relative(process.cwd(), path);
  if (argv.includes("--check")) {
    let current: string | undefined;
    try {
      current = readFileSync(path, "utf8");
    } catch {
      current = undefined;
    }
    if (current !== content) {
      process.stderr.write(
        `${shown} is out of date: run \`node ${relative(process.cwd(), process.argv[1] ?? "")}\` and commit the result\n`,
      );
      process.exit(1);
    }
    process.stdout.write(`${shown} is up to date\n`);
    return;
  }
  writeFileSync(path, content);
  process.stdout.write(`wrote ${shown}\n`);
}
