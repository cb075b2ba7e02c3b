export * from "./common.ts";
export * from "./spec.ts";
export * from "./status.ts";
export * from "./healthpolicy.ts";
export * from "./parse.ts";
export * from "./crd.ts";
export * from "./healthtarget.ts";
export * from "./healthrelease.ts";
