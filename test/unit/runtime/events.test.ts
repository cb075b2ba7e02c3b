import { describe, expect, it } from "vitest";
import { truncateUtf8 } from "../../../src/kube/events.ts";

describe("truncateUtf8", () => {
  it.each([
    { name: "short ASCII is kept", text: "abc", max: 10, want: "abc" },
    { name: "exactly the limit is kept", text: "a".repeat(10), max: 10, want: "a".repeat(10) },
    { name: "long ASCII: 7 bytes + … (3 bytes)", text: "a".repeat(11), max: 10, want: "aaaaaaa…" },
    { name: "3-byte characters cut whole: 2 × — + …", text: "—".repeat(5), max: 10, want: "——…" },
    { name: "a 4-byte emoji is never split", text: "ab😀😀", max: 8, want: "ab…" },
  ])("$name", ({ text, max, want }) => {
    const cut = truncateUtf8(text, max);
    expect(cut).toBe(want);
    expect(Buffer.byteLength(cut, "utf8")).toBeLessThanOrEqual(max);
  });
});
