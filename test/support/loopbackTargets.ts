// Real servers on loopback addresses for the prober's tests and bench: a healthy deep endpoint,
// one that answers 503, and the hostile kinds a prober must survive. Each binds its own
// 127.x.y.z address (any of them can be bound without setup), so a test can also show the
// prober dials nothing else.
//
// As a script it is the bench's target farm, in a process of its own so that the bench's busy
// main thread cannot slow the targets down:
//   node test/support/loopbackTargets.ts '{"kinds":{"healthy":900,"garbage":10},"firstIp":"127.20.0.1"}'
// prints one JSON line of LoopbackServer descriptions once every server listens, and runs until
// its stdin closes.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { createPki } from "../../src/devcluster/pki.ts";

export const TARGET_KINDS = [
  /** 200 "deep ok" on any path. */
  "healthy",
  /** 503 "database unreachable": answers, wrongly. */
  "failing",
  /** Accepts the connection and never says a word. */
  "silent",
  /** Sends the status line one byte a second. */
  "drip-headers",
  /** Sends headers, then the body one byte a second. */
  "drip-body",
  /** 200 with a 10 MiB body. */
  "huge-body",
  /** Half a header, then a TCP reset. */
  "reset-mid-header",
  /** Bytes that are not HTTP. */
  "garbage",
  /** 302 to another host (which counts the requests it gets). */
  "redirect",
  /** TCP accepted, the TLS handshake never answered. */
  "slow-tls",
  /** HTTPS with a certificate no one trusts: 200 "deep ok". */
  "tls-healthy",
] as const;
export type TargetKind = (typeof TARGET_KINDS)[number];

export interface LoopbackServer {
  kind: TargetKind;
  ip: string;
  port: number;
  scheme: "HTTP" | "HTTPS";
}

export interface RunningServers {
  servers: LoopbackServer[];
  /** Requests the redirect's destination received (it must stay 0). */
  redirectFollowed(): number;
  close(): Promise<void>;
}

const TEN_MIB = Buffer.alloc(10 * 1024 * 1024, "x");

function rawServer(onSocket: (socket: net.Socket, timers: Set<NodeJS.Timeout>) => void) {
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
    onSocket(socket, timers);
  });
  const stop = () => {
    for (const t of timers) clearInterval(t);
    for (const s of sockets) s.destroy();
  };
  return { server, stop };
}

function drip(socket: net.Socket, timers: Set<NodeJS.Timeout>, text: string) {
  let i = 0;
  const timer = setInterval(() => {
    if (i < text.length && !socket.destroyed) socket.write(text[i++]!);
  }, 1000);
  timers.add(timer);
  socket.on("close", () => {
    clearInterval(timer);
    timers.delete(timer);
  });
}

/** Starts `counts[kind]` servers of each kind, on consecutive addresses from `firstIp`. */
export async function startLoopbackServers(
  counts: Partial<Record<TargetKind, number>>,
  options: { firstIp?: string } = {},
): Promise<RunningServers> {
  const base = (options.firstIp ?? "127.20.0.1").split(".").map(Number);
  let next = base[1]! * 65536 + base[2]! * 256 + base[3]!;
  const nextIp = () => {
    const n = next++;
    return `127.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
  };

  let tls: { key: Buffer; cert: Buffer } | undefined;
  let pkiDir: string | undefined;
  if ((counts["tls-healthy"] ?? 0) > 0) {
    pkiDir = await mkdtemp(path.join(os.tmpdir(), "healthgate-prober-tls-"));
    const pki = await createPki(pkiDir, { servingSans: ["DNS:pod.invalid"], adminUser: "unused" });
    tls = { key: await readFile(pki.servingKey), cert: await readFile(pki.servingCert) };
  }

  let followed = 0;
  const stops: (() => void)[] = [];
  const listening: net.Server[] = [];
  const servers: LoopbackServer[] = [];

  const elsewhere = http.createServer((_req, res) => {
    followed++;
    res.end("you followed a redirect");
  });
  const elsewhereIp = nextIp();
  await listen(elsewhere, elsewhereIp);
  listening.push(elsewhere);
  const elsewherePort = (elsewhere.address() as net.AddressInfo).port;

  const make = (kind: TargetKind): net.Server => {
    const deepOk = (_req: http.IncomingMessage, res: http.ServerResponse) => res.end("deep ok");
    switch (kind) {
      case "healthy":
        return http.createServer(deepOk);
      case "tls-healthy":
        return https.createServer(tls!, deepOk);
      case "failing":
        return http.createServer((_req, res) => {
          res.statusCode = 503;
          res.end("database unreachable");
        });
      case "huge-body":
        return http.createServer((_req, res) => {
          res.on("error", () => undefined);
          res.end(TEN_MIB);
        });
      case "redirect":
        return http.createServer((_req, res) => {
          res.writeHead(302, { Location: `http://${elsewhereIp}:${elsewherePort}/health/deep` });
          res.end();
        });
      default: {
        const { server, stop } = rawServer((socket, timers) => {
          if (kind === "drip-headers")
            drip(socket, timers, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\ndeep ok");
          else if (kind === "drip-body") {
            socket.write("HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n");
            drip(socket, timers, "d".repeat(64));
          } else if (kind === "reset-mid-header") {
            socket.once("data", () => {
              socket.write("HTTP/1.1 200 OK\r\nContent-Ty");
              setImmediate(() => socket.resetAndDestroy());
            });
          } else if (kind === "garbage") {
            socket.once("data", () => socket.end("\u0000\u00ff\u00fe garbage, not HTTP\r\n\r\n"));
          }
          // silent and slow-tls: hold the connection and say nothing.
        });
        stops.push(stop);
        return server;
      }
    }
  };

  for (const kind of TARGET_KINDS) {
    for (let i = 0; i < (counts[kind] ?? 0); i++) {
      const server = make(kind);
      const ip = nextIp();
      await listen(server, ip);
      listening.push(server);
      const port = (server.address() as net.AddressInfo).port;
      servers.push({
        kind,
        ip,
        port,
        scheme: kind === "tls-healthy" || kind === "slow-tls" ? "HTTPS" : "HTTP",
      });
    }
  }

  return {
    servers,
    redirectFollowed: () => followed,
    async close() {
      for (const stop of stops) stop();
      await Promise.all(
        listening.map(
          (s) =>
            new Promise<void>((resolve) => {
              (s as http.Server).closeAllConnections?.();
              s.close(() => resolve());
            }),
        ),
      );
      if (pkiDir) await rm(pkiDir, { recursive: true, force: true });
    },
  };
}

/**
 * The same servers in a child process of their own: a test or bench that blocks its main thread
 * must not block the targets too.
 */
export async function spawnLoopbackServers(
  counts: Partial<Record<TargetKind, number>>,
  options: { firstIp?: string } = {},
): Promise<RunningServers & { pid: number }> {
  const child = spawn(
    process.execPath,
    [import.meta.filename, JSON.stringify({ kinds: counts, ...options })],
    {
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  const lines: string[] = [];
  let buffer = "";
  let lineArrived = () => undefined as void;
  child.stdout.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    let nl: number;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      lines.push(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
      lineArrived();
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  const nextLine = (index: number) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        if (lines.length > index) resolve(lines[index]!);
      };
      lineArrived = check;
      check();
      void exited.then((code) =>
        reject(new Error(`the loopback target farm exited (${code}) before answering`)),
      );
    });
  const servers = JSON.parse(await nextLine(0)) as LoopbackServer[];
  let followed = 0;
  return {
    pid: child.pid!,
    servers,
    redirectFollowed: () => followed,
    async close() {
      child.stdin.end();
      try {
        followed = (JSON.parse(await nextLine(1)) as { redirectFollowed: number }).redirectFollowed;
      } catch {
        // exited already
      }
      await exited;
    },
  };
}

function listen(server: net.Server, ip: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: ip, port: 0, backlog: 4096 }, () => resolve());
  });
}

if (import.meta.main) {
  const spec = JSON.parse(process.argv[2] ?? "{}") as {
    kinds: Partial<Record<TargetKind, number>>;
    firstIp?: string;
  };
  const running = await startLoopbackServers(spec.kinds, spec.firstIp ? { firstIp: spec.firstIp } : {});
  process.stdout.write(`${JSON.stringify(running.servers)}\n`);
  process.stdin.resume();
  process.stdin.on("end", () => {
    process.stdout.write(`${JSON.stringify({ redirectFollowed: running.redirectFollowed() })}\n`);
    void running.close().then(() => process.exit(0));
  });
}
