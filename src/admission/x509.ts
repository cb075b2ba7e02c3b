// X.509 certificates for the gate webhook, made with node:crypto alone: Node makes and signs
// with keys but writes no certificate, so the few DER structures a CA and a serving
// certificate need are encoded here (RFC 5280). P-256 keys, ECDSA with SHA-256 — what the
// control plane's own PKI uses (src/devcluster/pki.ts) and what every API server accepts.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  type KeyObject,
} from "node:crypto";

// ---- DER --------------------------------------------------------------------------------

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const tlv = (tag: number, ...content: Buffer[]) => {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), length(body.length), body]);
};
const sequence = (...items: Buffer[]) => tlv(0x30, ...items);
const set = (...items: Buffer[]) => tlv(0x31, ...items);
const octets = (b: Buffer) => tlv(0x04, b);
const bits = (b: Buffer, unused = 0) => tlv(0x03, Buffer.from([unused]), b);
const bool = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0]));
const explicit = (n: number, inner: Buffer) => tlv(0xa0 | n, inner);
function integer(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0 && (b[i + 1]! & 0x80) === 0) i++;
  const trimmed = b.subarray(i);
  return tlv(0x02, (trimmed[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}
function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split(".").map(Number) as [number, number, ...number[]];
  const out = [40 * a + b];
  for (const arc of rest) {
    const chunk = [arc & 0x7f];
    for (let v = arc >> 7; v > 0; v >>= 7) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, "").slice(0, 14); // YYYYMMDDHHMMSS
  // UTCTime through 2049, GeneralizedTime after (RFC 5280 4.1.2.5).
  return d.getUTCFullYear() < 2050
    ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`))
    : tlv(0x18, Buffer.from(`${iso}Z`));
}
const commonName = (cn: string) => sequence(set(sequence(oid("2.5.4.3"), tlv(0x0c, Buffer.from(cn)))));
const extension = (id: string, critical: boolean, value: Buffer) =>
  sequence(oid(id), ...(critical ? [bool(true)] : []), octets(value));

const ECDSA_SHA256 = sequence(oid("1.2.840.10045.4.3.2"));

function ipBytes(ip: string): Buffer {
  const v4 = ip.split(".");
  if (v4.length === 4) return Buffer.from(v4.map(Number));
  throw new Error(`unsupported IP address in a certificate: ${ip} (IPv4 only)`);
}

// ---- certificates -----------------------------------------------------------------------

export interface KeyPair {
  /** PKCS#8 PEM. */
  keyPem: string;
  key: KeyObject;
  /** SubjectPublicKeyInfo, DER. */
  spki: Buffer;
}

export function newKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return {
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    key: privateKey,
    spki: publicKey.export({ type: "spki", format: "der" }),
  };
}

export function keyPairFromPem(keyPem: string): KeyPair {
  const key = createPrivateKey(keyPem);
  return { keyPem, key, spki: createPublicKey(key).export({ type: "spki", format: "der" }) };
}

/** The key identifier of RFC 5280 4.2.1.2 (1): SHA-1 of the subjectPublicKey bits. */
function keyId(spki: Buffer): Buffer {
  // SPKI = SEQUENCE { AlgorithmIdentifier, BIT STRING }; for P-256 the key is the last 65 bytes.
  return createHash("sha1")
    .update(spki.subarray(spki.length - 65))
    .digest();
}

export interface CertificateRequest {
  commonName: string;
  notBefore: Date;
  notAfter: Date;
  /** The subject's key pair. */
  subject: KeyPair;
  /** Issuer name and key; omitted: self-signed (a CA). */
  issuer?: { commonName: string; key: KeyPair };
  isCA: boolean;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
}

/** A signed certificate, PEM. */
export function issueCertificate(req: CertificateRequest): string {
  const issuer = req.issuer ?? { commonName: req.commonName, key: req.subject };
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01;
  const extensions = [
    req.isCA ? extension("2.5.29.19", true, sequence(bool(true))) : extension("2.5.29.19", true, sequence()),
    // keyCertSign + cRLSign (CA) or digitalSignature (server).
    req.isCA
      ? extension("2.5.29.15", true, bits(Buffer.from([0x06]), 1))
      : extension("2.5.29.15", true, bits(Buffer.from([0x80]), 7)),
    extension("2.5.29.14", false, octets(keyId(req.subject.spki))),
    ...(req.isCA
      ? []
      : [
          extension("2.5.29.37", false, sequence(oid("1.3.6.1.5.5.7.3.1"))),
          extension("2.5.29.35", false, sequence(tlv(0x80, keyId(issuer.key.spki)))),
          extension(
            "2.5.29.17",
            false,
            sequence(
              ...(req.dnsNames ?? []).map((n) => tlv(0x82, Buffer.from(n))),
              ...(req.ipAddresses ?? []).map((ip) => tlv(0x87, ipBytes(ip))),
            ),
          ),
        ]),
  ];
  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))),
    integer(serial),
    ECDSA_SHA256,
    commonName(issuer.commonName),
    sequence(time(req.notBefore), time(req.notAfter)),
    commonName(req.commonName),
    req.subject.spki,
    explicit(3, sequence(...extensions)),
  );
  const signature = sign("sha256", tbs, issuer.key.key);
  const der = sequence(tbs, ECDSA_SHA256, bits(signature));
  const b64 = der.toString("base64").replace(/.{1,64}/g, "$&\n");
  return `-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n`;
}

/** The PEM certificates in a bundle, each with its trailing newline. */
export function splitPem(bundle: string): string[] {
  return [...bundle.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)].map((m) =>
    m[0].endsWith("\n") ? m[0] : `${m[0]}\n`,
  );
}
