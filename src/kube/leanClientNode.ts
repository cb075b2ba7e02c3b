// healthgate talks to the API server through client-node's KubeConfig (auth, TLS, proxies) and
// its own raw-JSON client (client.ts): it never uses client-node's generated API classes and
// models. Yet client-node's KubeConfig module imports the generated API's index for two names,
// and that index loads all of it — about 1,000 modules, 28 MiB of the operator's resident
// memory (15 MiB of V8 heap) for code `healthgate run` never calls (bench/README.md, "client-node
// without its generated API").
//
// `installLeanClientNode()` registers a module resolve hook (in this thread, synchronous: no
// loader thread) that hands that one import — `./gen/index.js` from client-node's
// `dist/config.js` — the module clientNodeGen.ts instead, which exports the same two names
// from the same files. Everything else resolves as before; a module that imports client-node's
// index (the `dev` command's typed clients) still gets all of it, with the same classes.
// test/unit/kube/leanClientNode.test.ts checks that the names match and that the generated API
// stays unloaded.
import { registerHooks } from "node:module";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";

const GEN_INDEX = "./gen/index.js";
const KUBE_CONFIG_MODULE = "/@kubernetes/client-node/dist/config.js";
const replacement = new URL(`./clientNodeGen${extname(fileURLToPath(import.meta.url))}`, import.meta.url)
  .href;

let installed = false;

/** Call before the first import of client-node (main.ts does, before loading a command). */
export function installLeanClientNode(): void {
  if (installed) return;
  installed = true;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      if (specifier === GEN_INDEX && context.parentURL?.endsWith(KUBE_CONFIG_MODULE)) {
        return nextResolve(replacement, context);
      }
      return nextResolve(specifier, context);
    },
  });
}
