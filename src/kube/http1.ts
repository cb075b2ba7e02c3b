// client-node 2.x talks to kube-apiserver through undici Agents, and undici 8 negotiates HTTP/2
// by default. Its HTTP/2 idle-session timeout destroys the socket with an InformationalError
// ("socket idle timeout", UND_ERR_INFO) that can escape as an uncaught exception once nothing
// is in flight — seen in the integration suite after operators stopped, and in a long-running
// operator it would end the process. HTTP/1.1 closes idle connections quietly, so every Agent
// client-node builds for a KubeConfig is made with allowH2: false. Importing this module is
// enough; it changes nothing else of the dispatcher (TLS options, keep-alive) client-node chose.
import { KubeConfig } from "@kubernetes/client-node/dist/config.js";
import { Agent, type Dispatcher } from "undici";

type DispatcherFactory = (cluster: unknown, agentOptions: unknown) => Dispatcher | undefined;
const proto = KubeConfig.prototype as unknown as {
  createDispatcher: DispatcherFactory;
  createDispatcherOptions: (cluster: unknown, agentOptions: unknown) => { type: string; connect?: object };
  http1Only?: true;
};

if (!proto.http1Only) {
  const original = proto.createDispatcher;
  proto.createDispatcher = function (this: typeof proto, cluster, agentOptions) {
    const options = this.createDispatcherOptions(cluster, agentOptions);
    if (options.type === "agent" && options.connect) {
      return new Agent({ connect: options.connect, allowH2: false });
    }
    return original.call(this, cluster, agentOptions);
  };
  proto.http1Only = true;
}
