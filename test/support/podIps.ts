// Pod IPs for simulated pods: unique per test run across every worker process.
//
// The run's range (198.18.0.0/15 in the test network namespace, where it is
// routed to loopback; a 127.x range otherwise) is cut into blocks. Each pod
// simulator claims a block by creating a directory named after it in the run
// directory: mkdir is atomic, so two workers never claim the same block, and
// no IP is handed out twice in a run. Tests bind real HTTP servers on these IPs.
import { mkdir } from "node:fs/promises";
import path from "node:path";

export interface Cidr {
  base: number;
  prefixLength: number;
}

export function parseCidr(cidr: string): Cidr {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  const octets = match?.slice(1, 5).map(Number);
  const prefixLength = Number(match?.[5]);
  if (!octets || octets.some((o) => o > 255) || prefixLength > 32) {
    throw new Error(`"${cidr}" is not an IPv4 CIDR`);
  }
  const address = octets.reduce((acc, octet) => acc * 256 + octet, 0);
  const size = 2 ** (32 - prefixLength);
  return { base: address - (address % size), prefixLength };
}

/** Whether `ip` lies in `cidr`. */
export function cidrContains(cidr: string, ip: string): boolean {
  const range = parseCidr(cidr);
  const offset = parseCidr(`${ip}/32`).base - range.base;
  return offset >= 0 && offset < 2 ** (32 - range.prefixLength);
}

export function formatIp(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

export function formatCidr({ base, prefixLength }: Cidr): string {
  return `${formatIp(base)}/${prefixLength}`;
}

/** Hands out the addresses of a CIDR in order, skipping its network and broadcast addresses; never reuses one. */
export class IpAllocator {
  private next = 1;
  private readonly size: number;
  readonly cidr: Cidr;

  constructor(cidr: string) {
    this.cidr = parseCidr(cidr);
    if (this.cidr.prefixLength > 30) throw new Error(`pod IP range ${cidr} is too small: use /30 or wider`);
    this.size = 2 ** (32 - this.cidr.prefixLength);
  }

  allocate(): string {
    if (this.next >= this.size - 1) throw new Error(`pod IP range ${formatCidr(this.cidr)} is exhausted`);
    return formatIp(this.cidr.base + this.next++);
  }
}

/**
 * Claims a /`blockPrefixLength` block of `runCidr` that no other claimant of
 * this run (same `runDir`) holds, and returns it as a CIDR.
 */
export async function claimIpBlock(runDir: string, runCidr: string, blockPrefixLength = 24): Promise<string> {
  const range = parseCidr(runCidr);
  if (blockPrefixLength < range.prefixLength) {
    throw new Error(`a /${blockPrefixLength} block does not fit in ${runCidr}`);
  }
  const blocks = 2 ** (blockPrefixLength - range.prefixLength);
  const blockSize = 2 ** (32 - blockPrefixLength);
  const claims = path.join(runDir, "pod-ip-blocks");
  await mkdir(claims, { recursive: true });
  for (let index = 0; index < blocks; index++) {
    try {
      await mkdir(path.join(claims, String(index)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw err;
    }
    return formatCidr({ base: range.base + index * blockSize, prefixLength: blockPrefixLength });
  }
  throw new Error(`every /${blockPrefixLength} block of ${runCidr} is taken in this run (${blocks} blocks)`);
}
