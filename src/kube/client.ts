// The one door to the Kubernetes API. Everything goes through `KubeClient.request`, which
// applies the kubeconfig's auth, counts the request in metrics and turns every non-2xx answer
// into client-node's `ApiException` — so the classifiers below work for typed client-node
// calls and ours alike. Bodies stay raw JSON: no client-node model classes, so dates are
// strings everywhere and informer caches hold only what callers keep.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import "./http1.ts";
// client-node's modules by path, not its index: the index loads the whole generated API, which
// healthgate never uses (leanClientNode.ts). The classes are the index's own.
import { KubeConfig } from "@kubernetes/client-node/dist/config.js";
import { ApiException } from "@kubernetes/client-node/dist/gen/apis/exception.js";
import {
  HttpMethod,
  RequestContext,
  type ResponseContext,
} from "@kubernetes/client-node/dist/gen/http/http.js";
import { IsomorphicFetchHttpLibrary } from "@kubernetes/client-node/dist/gen/http/isomorphic-fetch.js";
import { PatchStrategy } from "@kubernetes/client-node/dist/patch.js";
import type { ObjectMeta } from "../api/k8s.ts";
import type { HealthgateMetrics } from "../observability/metrics.ts";

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

/** An object as the API server sent it: every field, typed or not. */
export type RawObject = KubeObject & Record<string, unknown>;

/** What the REST path of a kind is made of. */
export interface ResourceRef {
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

/** The kinds healthgate reads or writes. */
export const resources = {
  pods: { group: "", version: "v1", kind: "Pod", plural: "pods", namespaced: true },
  nodes: { group: "", version: "v1", kind: "Node", plural: "nodes", namespaced: false },
  services: { group: "", version: "v1", kind: "Service", plural: "services", namespaced: true },
  deployments: { group: "apps", version: "v1", kind: "Deployment", plural: "deployments", namespaced: true },
  replicaSets: { group: "apps", version: "v1", kind: "ReplicaSet", plural: "replicasets", namespaced: true },
  horizontalPodAutoscalers: {
    group: "autoscaling",
    version: "v2",
    kind: "HorizontalPodAutoscaler",
    plural: "horizontalpodautoscalers",
    namespaced: true,
  },
  podDisruptionBudgets: {
    group: "policy",
    version: "v1",
    kind: "PodDisruptionBudget",
    plural: "poddisruptionbudgets",
    namespaced: true,
  },
  healthPolicies: {
    group: "healthgate.io",
    version: "v1alpha1",
    kind: "HealthPolicy",
    plural: "healthpolicies",
    namespaced: true,
  },
  healthTargets: {
    group: "healthgate.io",
    version: "v1alpha1",
    kind: "HealthTarget",
    plural: "healthtargets",
    namespaced: true,
  },
  healthReleases: {
    group: "healthgate.io",
    version: "v1alpha1",
    kind: "HealthRelease",
    plural: "healthreleases",
    namespaced: true,
  },
  leases: { group: "coordination.k8s.io", version: "v1", kind: "Lease", plural: "leases", namespaced: true },
  /** The gate webhook's certificates (one Secret, in healthgate's own namespace). */
  secrets: { group: "", version: "v1", kind: "Secret", plural: "secrets", namespaced: true },
  mutatingWebhookConfigurations: {
    group: "admissionregistration.k8s.io",
    version: "v1",
    kind: "MutatingWebhookConfiguration",
    plural: "mutatingwebhookconfigurations",
    namespaced: false,
  },
  events: { group: "events.k8s.io", version: "v1", kind: "Event", plural: "events", namespaced: true },
  /** metrics.k8s.io (metrics-server): each pod's latest usage sample; read-only, list only. */
  podMetrics: {
    group: "metrics.k8s.io",
    version: "v1beta1",
    kind: "PodMetrics",
    plural: "pods",
    namespaced: true,
  },
} as const satisfies Record<string, ResourceRef>;

export function apiVersionOf(ref: ResourceRef): string {
  return ref.group ? `${ref.group}/${ref.version}` : ref.version;
}

export function resourceFor(apiVersion: string | undefined, kind: string | undefined): ResourceRef {
  const ref = Object.values(resources).find((r) => r.kind === kind && apiVersionOf(r) === apiVersion);
  if (!ref) {
    throw new Error(
      `no REST mapping for kind ${kind ?? "(missing)"} in ${apiVersion ?? "(missing apiVersion)"}; ` +
        `add it to \`resources\` in src/kube/client.ts`,
    );
  }
  return ref;
}

export interface PathOptions {
  namespace?: string | undefined;
  name?: string | undefined;
  subresource?: string | undefined;
}

/** `/api/v1/namespaces/ns/pods/web-1/status`, `/apis/apps/v1/deployments` (all namespaces), … */
export function resourcePath(ref: ResourceRef, { namespace, name, subresource }: PathOptions = {}): string {
  const segments = [ref.group ? `/apis/${ref.group}/${ref.version}` : `/api/${ref.version}`];
  if (ref.namespaced && namespace !== undefined) segments.push("namespaces", encodeURIComponent(namespace));
  segments.push(ref.plural);
  if (name !== undefined) segments.push(encodeURIComponent(name));
  if (subresource !== undefined) segments.push(subresource);
  return segments.join("/");
}

/**
 * Kubeconfig in controller-runtime's order: an explicit file, then $KUBECONFIG (a path list),
 * then the pod's service account, then ~/.kube/config. Unlike client-node's loadFromDefault it
 * never falls back to an unauthenticated localhost:8080.
 */
export function loadKubeConfig(kubeconfigPath?: string): KubeConfig {
  const kc = new KubeConfig();
  const homeConfig = path.join(os.homedir(), ".kube", "config");
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else if (process.env.KUBECONFIG) kc.loadFromDefault();
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else if (fs.existsSync(homeConfig)) kc.loadFromFile(homeConfig);
  else {
    throw new Error(
      "no Kubernetes configuration found: pass --kubeconfig, set KUBECONFIG, or run healthgate in a pod",
    );
  }
  if (!kc.getCurrentCluster()) {
    throw new Error(`the kubeconfig's current context (${kc.getCurrentContext()}) names no cluster`);
  }
  return kc;
}

// ---- errors ---------------------------------------------------------------------------------

export function statusCodeOf(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}
export const isNotFound = (err: unknown): boolean => statusCodeOf(err) === 404;
export const isConflict = (err: unknown): boolean => statusCodeOf(err) === 409;
/** 410: a watch or list asked for a resourceVersion etcd has compacted away; relist. */
export const isGone = (err: unknown): boolean => statusCodeOf(err) === 410;
export const isTooManyRequests = (err: unknown): boolean => statusCodeOf(err) === 429;
/**
 * The server judged the request and refused it — invalid (400, 422) or forbidden by RBAC or an
 * admission policy (403): retrying the same write will not help until someone changes something.
 */
export const isRefused = (err: unknown): boolean => [400, 403, 422].includes(statusCodeOf(err) ?? 0);

/** The wait an API error asks for with `Retry-After` (429s, some 5xx), in ms. */
export function retryAfterMs(err: unknown, now: number = Date.now()): number | undefined {
  if (!(err instanceof ApiException)) return undefined;
  const headers = (err.headers ?? {}) as Record<string, string | undefined>;
  const value = headers["retry-after"] ?? headers["Retry-After"];
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** The API server's own words (Status.message) when there are some. */
export function apiErrorMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body = err.body as { message?: unknown } | undefined;
    return typeof body?.message === "string" ? `${err.code}: ${body.message}` : `HTTP ${err.code}`;
  }
  return err instanceof Error ? err.message : String(err);
}

// ---- client ---------------------------------------------------------------------------------

export interface ListQuery {
  labelSelector?: string | undefined;
  fieldSelector?: string | undefined;
  limit?: number | undefined;
  continue?: string | undefined;
}

export interface WatchQuery {
  resourceVersion: string;
  labelSelector?: string | undefined;
  fieldSelector?: string | undefined;
  allowWatchBookmarks?: boolean;
  timeoutSeconds?: number;
}

export interface ObjectList<T extends KubeObject = RawObject> {
  apiVersion: string;
  kind: string;
  metadata: { resourceVersion: string; continue?: string };
  items: T[];
}

export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK";
  object: RawObject;
}

export interface ApplyOptions {
  fieldManager: string;
  /** Take fields other managers own (healthgate's Enforce mode). */
  force?: boolean;
  subresource?: "status";
  signal?: AbortSignal;
}

export interface ObjectReference {
  apiVersion: string;
  kind: string;
  namespace?: string | undefined;
  name: string;
}

export interface KubeClientOptions {
  metrics: HealthgateMetrics;
  /** Bound on every request but watches. */
  requestTimeoutMs?: number;
}

type Verb = "get" | "list" | "watch" | "create" | "update" | "patch" | "apply" | "delete" | "discover";

interface RequestSpec {
  verb: Verb;
  ref: ResourceRef;
  path: PathOptions;
  query?: Record<string, string | number | boolean | undefined>;
  method: HttpMethod;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal | undefined;
  /** A path outside the resource tree (discovery); `ref` then only labels the metrics. */
  rawPath?: string;
}

export class KubeClient {
  private readonly http = new IsomorphicFetchHttpLibrary();
  private readonly kubeConfig: KubeConfig;
  private readonly server: string;
  private dispatcher: ReturnType<RequestContext["getDispatcher"]>;
  private readonly metrics: HealthgateMetrics;
  private readonly requestTimeoutMs: number;

  constructor(kubeConfig: KubeConfig, { metrics, requestTimeoutMs = 30_000 }: KubeClientOptions) {
    this.kubeConfig = kubeConfig;
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error("the kubeconfig has no current cluster");
    this.server = cluster.server.replace(/\/+$/, "");
    this.metrics = metrics;
    this.requestTimeoutMs = requestTimeoutMs;
  }

  async get<T extends KubeObject>(
    ref: ResourceRef,
    target: PathOptions & { name: string },
    signal?: AbortSignal,
  ): Promise<T> {
    return this.json<T>({ verb: "get", ref, path: target, method: HttpMethod.GET, signal });
  }

  /** One page of a list; items carry apiVersion and kind like watch events do. */
  async list(
    ref: ResourceRef,
    namespace: string | undefined,
    query: ListQuery,
    signal?: AbortSignal,
  ): Promise<ObjectList> {
    const list = await this.json<ObjectList>({
      verb: "list",
      ref,
      path: { namespace },
      query: { ...query },
      method: HttpMethod.GET,
      signal,
    });
    const kind = list.kind.replace(/List$/, "");
    for (const item of list.items) {
      item.apiVersion ??= list.apiVersion;
      item.kind ??= kind;
    }
    return list;
  }

  async create<T extends KubeObject>(obj: T, signal?: AbortSignal): Promise<T> {
    return this.json<T>(this.createSpec(obj, signal));
  }

  /** `create` for a caller that needs only its success (an Event): the reply is read, not parsed. */
  async createDiscardingReply(obj: KubeObject, signal?: AbortSignal): Promise<void> {
    await this.discard(this.createSpec(obj, signal));
  }

  private createSpec(obj: KubeObject, signal: AbortSignal | undefined): RequestSpec {
    const ref = resourceFor(obj.apiVersion, obj.kind);
    const path = { namespace: obj.metadata.namespace };
    return { verb: "create", ref, path, method: HttpMethod.POST, body: obj, signal };
  }

  /** PUT; the object's resourceVersion makes it conditional (409 when someone wrote first). */
  async replace<T extends KubeObject>(obj: T, signal?: AbortSignal): Promise<T> {
    const ref = resourceFor(obj.apiVersion, obj.kind);
    const path = { namespace: obj.metadata.namespace, name: obj.metadata.name };
    return this.json<T>({ verb: "update", ref, path, method: HttpMethod.PUT, body: obj, signal });
  }

  /**
   * Discovery: whether the API server serves `plural` in `group/version` (e.g. whether
   * mutatingadmissionpolicies exist in admissionregistration.k8s.io/v1). A group version the
   * server does not know answers 404: false.
   */
  async serves(group: string, version: string, plural: string, signal?: AbortSignal): Promise<boolean> {
    try {
      const list = await this.json<{ resources?: { name: string }[] }>({
        verb: "discover",
        ref: { group, version, kind: "APIResourceList", plural, namespaced: false },
        path: {},
        rawPath: `/apis/${group}/${version}`,
        method: HttpMethod.GET,
        signal,
      });
      return (list.resources ?? []).some((r) => r.name === plural);
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /**
   * GET through the API server's service proxy (/api/v1/namespaces/<ns>/services/<svc>:<port>/proxy/<path>):
   * the JSON a Service's port answers. Needs `get` on services/proxy in that namespace.
   */
  async serviceProxyGet<T>(
    target: { namespace: string; service: string; port: string },
    path: string,
    query: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<T> {
    return this.json<T>({
      verb: "get",
      ref: { ...resources.services, plural: "services/proxy" },
      path: {},
      rawPath:
        `/api/v1/namespaces/${encodeURIComponent(target.namespace)}/services/` +
        `${encodeURIComponent(target.service)}:${encodeURIComponent(target.port)}/proxy${path}`,
      query,
      method: HttpMethod.GET,
      signal,
    });
  }

  /** RFC 6902 JSON patch; "test" operations make it conditional on what the caller saw. */
  async jsonPatch<T extends KubeObject>(
    ref: ResourceRef,
    target: PathOptions & { name: string },
    operations: readonly { op: "test" | "remove" | "add" | "replace"; path: string; value?: unknown }[],
    options: { fieldManager?: string; signal?: AbortSignal; dryRun?: boolean } = {},
  ): Promise<T> {
    return this.json<T>({
      verb: "patch",
      ref,
      path: target,
      query: { fieldManager: options.fieldManager, dryRun: options.dryRun ? "All" : undefined },
      method: HttpMethod.PATCH,
      body: operations,
      contentType: PatchStrategy.JsonPatch,
      signal: options.signal,
    });
  }

  /** Deletes an object; with `preconditions.uid`, only that incarnation of it (409 otherwise). */
  async delete(
    ref: ResourceRef,
    target: PathOptions & { name: string },
    signal?: AbortSignal,
    preconditions?: { uid: string },
  ): Promise<void> {
    await this.json<unknown>({
      verb: "delete",
      ref,
      path: target,
      method: HttpMethod.DELETE,
      body: {
        apiVersion: "v1",
        kind: "DeleteOptions",
        propagationPolicy: "Background",
        ...(preconditions ? { preconditions } : {}),
      },
      signal,
    });
  }

  /**
   * Server-side apply: `obj` states every field `fieldManager` wants to own; fields it owned
   * before and no longer sends are removed. Returns the object as the server stored it.
   */
  async applyObject<T extends KubeObject>(obj: T, options: ApplyOptions): Promise<T> {
    return this.json<T>(this.applySpec(obj, options));
  }

  /**
   * `applyObject` for a caller that needs only its success (a status write): the reply — the
   * whole object, managedFields included — is read to its end but not parsed into objects
   * nobody reads (the watch brings the same object to the cache anyway).
   */
  async applyDiscardingReply(obj: KubeObject, options: ApplyOptions): Promise<void> {
    await this.discard(this.applySpec(obj, options));
  }

  private applySpec(obj: KubeObject, options: ApplyOptions): RequestSpec {
    const ref = resourceFor(obj.apiVersion, obj.kind);
    const { managedFields: _ignored, ...metadata } = obj.metadata;
    return {
      verb: "apply",
      ref,
      path: requireNamespace(ref, obj.metadata, options.subresource),
      query: { fieldManager: options.fieldManager, force: options.force ? true : undefined },
      method: HttpMethod.PATCH,
      // The apply content type is YAML, and JSON is YAML.
      body: { ...obj, metadata },
      contentType: PatchStrategy.ServerSideApply,
      signal: options.signal,
    };
  }

  /** JSON merge patch of `.status`; with `resourceVersion` it fails with 409 if the object moved on. */
  async mergePatchStatus<T extends KubeObject>(
    target: ObjectReference,
    status: unknown,
    options: { fieldManager?: string; resourceVersion?: string; signal?: AbortSignal } = {},
  ): Promise<T> {
    const ref = resourceFor(target.apiVersion, target.kind);
    const metadata = options.resourceVersion ? { resourceVersion: options.resourceVersion } : undefined;
    return this.json<T>({
      verb: "patch",
      ref,
      path: requireNamespace(ref, target, "status"),
      query: { fieldManager: options.fieldManager },
      method: HttpMethod.PATCH,
      body: { metadata, status },
      contentType: PatchStrategy.MergePatch,
      signal: options.signal,
    });
  }

  /**
   * Streams a watch until the server closes it (resolves) or it fails (rejects: the request's
   * ApiException, an `ERROR` event as ApiException with the Status's code — 410 included —,
   * a broken stream, or the signal's abort).
   */
  async watch(
    ref: ResourceRef,
    namespace: string | undefined,
    query: WatchQuery,
    onEvent: (event: WatchEvent) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const response = await this.send({
      verb: "watch",
      ref,
      path: { namespace },
      query: { ...query, watch: true },
      method: HttpMethod.GET,
      signal,
    });
    const stream = response.body.stream();
    if (!stream) throw new Error(`watch of ${ref.plural} returned no body`);
    const decoder = new TextDecoder();
    // One event per line. Only the new chunk is searched for a newline: a large object (a policy
    // whose status lists hundreds of targets) arrives in many small chunks, and searching all
    // that was pending each time was quadratic in the event's size.
    let pending = "";
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true });
      let from = 0;
      for (let newline = text.indexOf("\n"); newline >= 0; newline = text.indexOf("\n", from)) {
        const line = (pending + text.slice(from, newline)).trim();
        pending = "";
        from = newline + 1;
        if (line) onEvent(parseWatchLine(line));
      }
      pending += text.slice(from);
    }
  }

  private async json<T>(spec: RequestSpec): Promise<T> {
    const response = await this.send(this.bounded(spec));
    return JSON.parse(await response.body.text()) as T;
  }

  /** Sends and reads the reply to its end (the connection is reused only then) without parsing it. */
  private async discard(spec: RequestSpec): Promise<void> {
    const response = await this.send(this.bounded(spec));
    // (client-node's `binary()` calls node-fetch's `buffer()`, which undici's Response lacks.)
    const stream = response.body.stream();
    if (!stream) return void (await response.body.text());
    for await (const _chunk of stream) {
      // dropped
    }
  }

  private bounded(spec: RequestSpec): RequestSpec {
    const timeout = AbortSignal.timeout(this.requestTimeoutMs);
    return { ...spec, signal: spec.signal ? AbortSignal.any([spec.signal, timeout]) : timeout };
  }

  private async send(spec: RequestSpec): Promise<ResponseContext> {
    const url = new URL(this.server + (spec.rawPath ?? resourcePath(spec.ref, spec.path)));
    for (const [key, value] of Object.entries(spec.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const context = new RequestContext(url.toString(), spec.method);
    await this.kubeConfig.applySecurityAuthentication(context);
    // client-node 2.0.1 builds a new undici Agent (a new connection pool, so a new TLS
    // handshake) for every request; keep the first so connections are reused. Tokens are
    // headers and stay fresh; TLS client certificates are read once per KubeClient.
    this.dispatcher ??= context.getDispatcher();
    if (this.dispatcher) context.setDispatcher(this.dispatcher);
    context.setHeaderParam("Accept", "application/json");
    if (spec.body !== undefined) {
      context.setHeaderParam("Content-Type", spec.contentType ?? "application/json");
      context.setBody(JSON.stringify(spec.body));
    }
    if (spec.signal) context.setSignal(spec.signal);

    const resource = spec.path.subresource ? `${spec.ref.plural}/${spec.path.subresource}` : spec.ref.plural;
    let response: ResponseContext;
    try {
      response = await this.http.send(context).toPromise();
    } catch (err) {
      this.metrics.apiRequests.inc({ verb: spec.verb, resource, code: "error" });
      throw err;
    }
    const code = response.httpStatusCode;
    this.metrics.apiRequests.inc({ verb: spec.verb, resource, code: String(code) });
    if (code < 200 || code > 299) {
      const text = await response.body.text();
      const status = parseJsonOr(text);
      const message = (status as { message?: string } | undefined)?.message ?? text;
      throw new ApiException(code, message, status, response.headers);
    }
    return response;
  }
}

function requireNamespace(
  ref: ResourceRef,
  meta: { namespace?: string | undefined; name: string },
  subresource?: string,
) {
  if (ref.namespaced && !meta.namespace) {
    throw new Error(`${ref.kind} ${meta.name} needs metadata.namespace: ${ref.kind} is namespaced`);
  }
  return { namespace: meta.namespace, name: meta.name, subresource };
}

function parseWatchLine(line: string): WatchEvent {
  const event = JSON.parse(line) as { type: string; object: unknown };
  if (event.type === "ERROR") {
    const status = event.object as { code?: number; message?: string };
    throw new ApiException(status.code ?? 500, status.message ?? "watch error", status, {});
  }
  return event as WatchEvent;
}

function parseJsonOr(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
