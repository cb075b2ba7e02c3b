// The gate webhook's certificates, managed by healthgate itself in one Secret (issue 20): a
// CA, the serving certificate it signs, and the bundle of CAs the API server is told to trust
// (the MutatingWebhookConfiguration's caBundle). Rotation never fails an admission:
//  1. a CA near its end is replaced by a new one that joins the bundle beside the old;
//  2. only once the new CA has been in the bundle for `overlapMs` (every replica reloaded the
//     Secret and the caBundle reached the API server) is a serving certificate from it issued;
//  3. an old CA leaves the bundle when it expires.
// So at every moment the certificate any replica serves is signed by a CA in the caBundle.
// Every replica runs the same plan; the Secret's resourceVersion makes writes conditional,
// so two replicas racing make one rotation, not two.
import { X509Certificate } from "node:crypto";
import { issueCertificate, keyPairFromPem, newKeyPair, splitPem } from "./x509.ts";

/** Secret data keys. `tls.crt`/`tls.key`/`ca.crt` are also what cert-manager writes. */
export const SECRET_KEYS = {
  caCert: "ca.crt",
  caKey: "ca.key",
  bundle: "ca-bundle.crt",
  cert: "tls.crt",
  key: "tls.key",
} as const;
/** When the current CA joined the bundle (RFC 3339). */
export const TRUSTED_SINCE_ANNOTATION = "healthgate.io/ca-trusted-since";

export interface CertSettings {
  caValidityMs: number;
  servingValidityMs: number;
  /** How long a new CA is trusted before a serving certificate signed by it is served. */
  overlapMs: number;
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
  commonName: string;
}

export const DEFAULT_CERT_SETTINGS = {
  caValidityMs: 5 * 365 * 24 * 3600_000,
  servingValidityMs: 90 * 24 * 3600_000,
  overlapMs: 10 * 60_000,
} as const;

/** What the Secret holds, in PEM. */
export interface CertState {
  caCert: string;
  caKey: string;
  /** Every CA the API server should trust, current one included. */
  bundle: string;
  cert: string;
  key: string;
  caTrustedSince: string;
}

/** Reads the state from a Secret's data (base64) and annotations; undefined when incomplete. */
export function readCertState(
  data: Readonly<Record<string, string>> | undefined,
  annotations: Readonly<Record<string, string>> | undefined,
): CertState | undefined {
  const get = (k: string) => (data?.[k] ? Buffer.from(data[k], "base64").toString("utf8") : undefined);
  const caCert = get(SECRET_KEYS.caCert);
  const caKey = get(SECRET_KEYS.caKey);
  const bundle = get(SECRET_KEYS.bundle);
  const cert = get(SECRET_KEYS.cert);
  const key = get(SECRET_KEYS.key);
  const caTrustedSince = annotations?.[TRUSTED_SINCE_ANNOTATION];
  if (!caCert || !caKey || !bundle || !cert || !key || !caTrustedSince) return undefined;
  return { caCert, caKey, bundle, cert, key, caTrustedSince };
}

export function certStateData(state: CertState): Record<string, string> {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  return {
    [SECRET_KEYS.caCert]: b64(state.caCert),
    [SECRET_KEYS.caKey]: b64(state.caKey),
    [SECRET_KEYS.bundle]: b64(state.bundle),
    [SECRET_KEYS.cert]: b64(state.cert),
    [SECRET_KEYS.key]: b64(state.key),
  };
}

const validTo = (pem: string) => new X509Certificate(pem).validToDate.getTime();
const validFrom = (pem: string) => new X509Certificate(pem).validFromDate.getTime();
/** Renew once two thirds of the lifetime have passed. */
const due = (pem: string, now: number) => {
  const from = validFrom(pem);
  return now >= from + ((validTo(pem) - from) * 2) / 3;
};
const expectedSans = (s: CertSettings) =>
  [...s.dnsNames.map((n) => `DNS:${n}`), ...s.ipAddresses.map((ip) => `IP Address:${ip}`)].join(", ");

/** Certificates start a little in the past: the API server's clock and this node's may differ. */
const backdate = (validityMs: number) => Math.min(60_000, validityMs / 10);

function newCa(settings: CertSettings, now: number): { caCert: string; caKey: string } {
  const key = newKeyPair();
  const caCert = issueCertificate({
    commonName: `${settings.commonName}-ca-${now.toString(36)}`,
    notBefore: new Date(now - backdate(settings.caValidityMs)),
    notAfter: new Date(now + settings.caValidityMs),
    subject: key,
    isCA: true,
  });
  return { caCert, caKey: key.keyPem };
}

function newServing(ca: { caCert: string; caKey: string }, settings: CertSettings, now: number) {
  const key = newKeyPair();
  const caName = new X509Certificate(ca.caCert).subject.replace(/^CN=/, "");
  const cert = issueCertificate({
    commonName: settings.commonName,
    notBefore: new Date(now - backdate(settings.servingValidityMs)),
    notAfter: new Date(Math.min(now + settings.servingValidityMs, validTo(ca.caCert))),
    subject: key,
    issuer: { commonName: caName, key: keyPairFromPem(ca.caKey) },
    isCA: false,
    dnsNames: settings.dnsNames,
    ipAddresses: settings.ipAddresses,
  });
  return { cert, key: key.keyPem };
}

export type CertStep = "Created" | "CaRotated" | "ServingRenewed" | "BundlePruned";

/**
 * The next state of the Secret, or undefined when nothing is due. One step at a time: the
 * caller writes it, and every replica loads it, before the next step is planned.
 */
export function planCertificates(
  state: CertState | undefined,
  settings: CertSettings,
  nowMs: number,
): { state: CertState; step: CertStep } | undefined {
  if (!state || !parses(state)) {
    const ca = newCa(settings, nowMs);
    return {
      step: "Created",
      state: {
        ...ca,
        bundle: ca.caCert,
        ...newServing(ca, settings, nowMs),
        caTrustedSince: new Date(nowMs).toISOString(),
      },
    };
  }
  if (due(state.caCert, nowMs)) {
    const ca = newCa(settings, nowMs);
    return {
      step: "CaRotated",
      state: {
        ...state,
        ...ca,
        bundle: ca.caCert + splitPem(state.bundle).join(""),
        caTrustedSince: new Date(nowMs).toISOString(),
      },
    };
  }
  const served = new X509Certificate(state.cert);
  const fromCurrentCa = served.checkIssued(new X509Certificate(state.caCert));
  const trustedLongEnough = nowMs - Date.parse(state.caTrustedSince) >= settings.overlapMs;
  const expired = validTo(state.cert) <= nowMs;
  const stale =
    !fromCurrentCa || due(state.cert, nowMs) || (served.subjectAltName ?? "") !== expectedSans(settings);
  if ((stale && trustedLongEnough) || expired) {
    return { step: "ServingRenewed", state: { ...state, ...newServing(state, settings, nowMs) } };
  }
  const kept = splitPem(state.bundle).filter((pem) => pem === state.caCert || validTo(pem) > nowMs);
  if (kept.length !== splitPem(state.bundle).length) {
    return { step: "BundlePruned", state: { ...state, bundle: kept.join("") } };
  }
  return undefined;
}

function parses(state: CertState): boolean {
  try {
    new X509Certificate(state.caCert);
    new X509Certificate(state.cert);
    keyPairFromPem(state.caKey);
    keyPairFromPem(state.key);
    return splitPem(state.bundle).length > 0 && !Number.isNaN(Date.parse(state.caTrustedSince));
  } catch {
    return false;
  }
}
