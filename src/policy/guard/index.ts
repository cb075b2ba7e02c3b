// The correlated-failure guard (DESIGN.md, "Correlated-failure guard"). Pure.
export * from "./assess.ts";
export * from "./concern.ts";
export * from "./correlated.ts";
export * from "./flapping.ts";
export * from "./hold.ts";
export * from "./pods.ts";
export * from "./liveness.ts";
