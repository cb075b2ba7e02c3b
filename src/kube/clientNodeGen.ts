// What client-node's KubeConfig module (dist/config.js) takes from its generated API
// (dist/gen/index.js): these two names and nothing else. `healthgate run` loads this module in
// its place (leanClientNode.ts): the same functions, from the same files.
export { createConfiguration } from "@kubernetes/client-node/dist/gen/configuration.js";
export { ServerConfiguration } from "@kubernetes/client-node/dist/gen/servers.js";
