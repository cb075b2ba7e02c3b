// pino JSON logs. Stable keys across the code base: `namespace`, `name`, `kind`, `reason`
// (plus `resource` for API resources and `err` for errors, which pino serialises).
import { pino, type DestinationStream, type Logger } from "pino";

export type { Logger };

export const logLevels = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof logLevels)[number];

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { app: "healthgate" },
    timestamp: pino.stdTimeFunctions.isoTime,
    // "level":"info" reads better in `kubectl logs` than pino's numeric 30.
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** A child logger whose every line names the object it is about. */
export function objectLogger(
  logger: Logger,
  object: { kind: string; namespace?: string | undefined; name: string },
): Logger {
  return logger.child({ kind: object.kind, namespace: object.namespace, name: object.name });
}
