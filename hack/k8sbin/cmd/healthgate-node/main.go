// Command healthgate-node is a test node: the real kubelet (kubemark's hollow
// kubelet, with the real prober and real Events) on the fake CRI runtime of
// k8s.io/cri-client, built from the Kubernetes version the project pins (or
// K8S_VERSION's, see hack/build-k8s.sh; runtimeclient*.go differ per minor).
//
// The fake runtime runs no processes. What this main adds so tests can rely on
// the kubelet's own behaviour:
//   - each pod sandbox gets its own IP from --pod-cidr, so the kubelet dials
//     every pod's probes at the pod's own address (the test serves it there);
//   - pod annotations steer the fake containers, read live from the API server:
//     test-node.healthgate.io/exec-exit-code: "N"  every exec in the pod's
//     containers (exec probes, exec hooks) exits with N;
//     test-node.healthgate.io/exit-code: "N"       the pod's running containers
//     exit with N (again after each restart, so the kubelet crash-loops them);
//   - an image whose registry host ends in ".invalid" cannot be pulled, as on a
//     real node (ErrImagePull, then ImagePullBackOff).
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	clientset "k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	fakeremote "k8s.io/cri-client/pkg/fake"
	"k8s.io/klog/v2"
	cadvisortest "k8s.io/kubernetes/pkg/kubelet/cadvisor/testing"
	"k8s.io/kubernetes/pkg/kubelet/cm"
	"k8s.io/kubernetes/pkg/kubemark"
	utilexec "k8s.io/utils/exec"
)

const (
	execExitCodeAnnotation = "test-node.healthgate.io/exec-exit-code"
	exitCodeAnnotation     = "test-node.healthgate.io/exit-code"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig with the node's credentials (O=system:nodes, CN=system:node:<name>)")
	nodeName := flag.String("node-name", "", "the Node's name (its object should exist already)")
	nodeIP := flag.String("node-ip", "", "the node's address; the kubelet serves on it")
	podCIDR := flag.String("pod-cidr", "", "pod IPs come from here, one per sandbox")
	zone := flag.String("zone", "", "value of the topology.kubernetes.io/zone label")
	port := flag.Int("kubelet-port", 10250, "the kubelet's HTTPS port on --node-ip")
	rootDir := flag.String("root-dir", "", "the kubelet's directory (default: a new one under /tmp)")
	clusterDNS := flag.String("cluster-dns", "", "the cluster DNS Service IP written into pods' resolv.conf (nothing need serve it)")
	klog.InitFlags(nil)
	flag.Parse()
	if *kubeconfig == "" || *nodeName == "" || *nodeIP == "" || *podCIDR == "" {
		fmt.Fprintln(os.Stderr, "healthgate-node: --kubeconfig, --node-name, --node-ip and --pod-cidr are required")
		os.Exit(2)
	}
	if err := run(*kubeconfig, *nodeName, *nodeIP, *podCIDR, *zone, *port, *rootDir, *clusterDNS); err != nil {
		fmt.Fprintf(os.Stderr, "healthgate-node %s: %v\n", *nodeName, err)
		os.Exit(1)
	}
}

func run(kubeconfig, nodeName, nodeIP, podCIDR, zone string, port int, rootDir, clusterDNS string) error {
	ctx := context.Background()
	ips, err := newIPPool(podCIDR)
	if err != nil {
		return err
	}
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	config.UserAgent = "healthgate-node"
	client, err := clientset.NewForConfig(config)
	if err != nil {
		return err
	}
	labels := map[string]string{}
	if zone != "" {
		labels[v1.LabelTopologyZone] = zone
	}
	flags, kc := kubemark.GetHollowKubeletConfig(&kubemark.HollowKubeletOptions{
		NodeName: nodeName, KubeletPort: port, MaxPods: 110, NodeLabels: labels,
	})
	if rootDir != "" { // kubemark makes its directories under /tmp; move them where the caller cleans up
		_ = os.RemoveAll(flags.RootDirectory)
		flags.RootDirectory = rootDir
		kc.StaticPodPath = filepath.Join(rootDir, "static-pods")
		kc.PodLogsDir = filepath.Join(rootDir, "pod-logs")
		for _, dir := range []string{kc.StaticPodPath, kc.PodLogsDir} {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
	}
	flags.NodeIP = nodeIP
	if clusterDNS != "" { // without one, every pod gets a MissingClusterDNS warning Event
		kc.ClusterDNS = []string{clusterDNS}
	}
	kc.Address = nodeIP
	kc.HealthzPort = 0 // 10248 by default: several nodes share one network namespace
	heartbeatConfig := *config
	heartbeatConfig.Timeout = kc.NodeStatusUpdateFrequency.Duration
	heartbeatConfig.QPS = -1
	heartbeat, err := clientset.NewForConfig(&heartbeatConfig)
	if err != nil {
		return err
	}

	// Pods bound to this node, for the annotations that steer the fake containers.
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(
		func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", nodeName).String()
		}))
	pods := factory.Core().V1().Pods().Lister()
	factory.Start(ctx.Done())

	fake := fakeremote.NewFakeRemoteRuntime()
	endpoint := "unix://" + filepath.Join(flags.RootDirectory, "cri.sock")
	if err := fake.Start(endpoint); err != nil {
		return err
	}
	runtimeClient, err := newRuntimeClient(ctx, endpoint, 15*time.Second)
	if err != nil {
		return err
	}
	rt := &runtime{RuntimeService: runtimeClient, fake: fake, ips: ips, pods: pods}
	go rt.exitContainers()

	hk := kubemark.NewHollowKubelet(flags, kc, client, heartbeat, &cadvisortest.Fake{NodeName: nodeName},
		&images{ImageManagerService: fake.ImageService}, rt, cm.NewStubContainerManager())
	hk.KubeletDeps.ProbeManager = nil // nil: the kubelet builds the real prober
	hk.KubeletDeps.Recorder = nil     // nil: real Events, sent through EventClient
	hk.KubeletDeps.EventClient = client.CoreV1()
	hk.Run(ctx)
	return nil
}

// runtime is the kubelet's view of the fake runtime, with per-sandbox IPs and
// annotation-driven exec results and container exits.
type runtime struct {
	internalapi.RuntimeService
	fake *fakeremote.RemoteRuntime
	ips  *ipPool
	pods corelisters.PodLister
}

func (r *runtime) RunPodSandbox(ctx context.Context, config *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	id, err := r.RuntimeService.RunPodSandbox(ctx, config, handler)
	if err != nil {
		return id, err
	}
	ip, err := r.ips.take(id)
	if err != nil {
		return id, err
	}
	f := r.fake.RuntimeService
	f.Lock()
	defer f.Unlock()
	if s, ok := f.Sandboxes[id]; ok {
		s.Network = &runtimeapi.PodSandboxNetworkStatus{Ip: ip}
	}
	return id, nil
}

func (r *runtime) RemovePodSandbox(ctx context.Context, id string) error {
	err := r.RuntimeService.RemovePodSandbox(ctx, id)
	if err == nil {
		r.ips.release(id)
	}
	return err
}

// pod returns the pod a fake container belongs to, from the informer's cache.
func (r *runtime) pod(labels map[string]string) *v1.Pod {
	pod, err := r.pods.Pods(labels["io.kubernetes.pod.namespace"]).Get(labels["io.kubernetes.pod.name"])
	if err != nil {
		return nil
	}
	return pod
}

func annotatedCode(pod *v1.Pod, key string) (int, bool) {
	if pod == nil {
		return 0, false
	}
	code, err := strconv.Atoi(pod.Annotations[key])
	return code, err == nil
}

func (r *runtime) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, error) {
	f := r.fake.RuntimeService
	f.Lock()
	var labels map[string]string
	if c, ok := f.Containers[id]; ok {
		labels = c.Labels
	}
	f.Unlock()
	if code, ok := annotatedCode(r.pod(labels), execExitCodeAnnotation); ok && code != 0 {
		msg := fmt.Sprintf("%s exited with %d (%s)", strings.Join(cmd, " "), code, execExitCodeAnnotation)
		return nil, []byte(msg), utilexec.CodeExitError{Err: fmt.Errorf("%s", msg), Code: code}
	}
	return r.RuntimeService.ExecSync(ctx, id, cmd, timeout)
}

// exitContainers ends running containers whose pod asks for it, once a second
// (the kubelet's PLEG relists every second); it also drops the fake's call log,
// which otherwise grows for as long as the node runs.
func (r *runtime) exitContainers() {
	f := r.fake.RuntimeService
	for range time.Tick(time.Second) {
		f.Lock()
		f.Called = nil
		for _, c := range f.Containers {
			if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				continue
			}
			if code, ok := annotatedCode(r.pod(c.Labels), exitCodeAnnotation); ok {
				c.State = runtimeapi.ContainerState_CONTAINER_EXITED
				c.ExitCode = int32(code)
				c.Reason = "Error"
				c.FinishedAt = time.Now().UnixNano()
			}
		}
		f.Unlock()
	}
}

// images refuses to pull from registries that cannot exist (RFC 2606 .invalid).
type images struct {
	internalapi.ImageManagerService
}

func unresolvableHost(image string) string {
	host, _, found := strings.Cut(image, "/")
	if found && strings.HasSuffix(strings.Split(host, ":")[0], ".invalid") {
		return strings.Split(host, ":")[0]
	}
	return ""
}

func (i *images) ImageStatus(ctx context.Context, spec *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error) {
	if unresolvableHost(spec.Image) != "" {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	return i.ImageManagerService.ImageStatus(ctx, spec, verbose)
}

func (i *images) PullImage(ctx context.Context, spec *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, sandbox *runtimeapi.PodSandboxConfig) (string, error) {
	if host := unresolvableHost(spec.Image); host != "" {
		return "", fmt.Errorf("failed to pull and unpack image %q: failed to resolve reference %q: dial tcp: lookup %s: no such host",
			spec.Image, spec.Image, host)
	}
	return i.ImageManagerService.PullImage(ctx, spec, auth, sandbox)
}

// ipPool hands out the addresses of a CIDR, least recently released first.
type ipPool struct {
	mu     sync.Mutex
	free   []string
	bySbox map[string]string
}

func newIPPool(cidr string) (*ipPool, error) {
	_, network, err := net.ParseCIDR(cidr)
	if err != nil || network.IP.To4() == nil {
		return nil, fmt.Errorf("--pod-cidr %q is not an IPv4 CIDR", cidr)
	}
	ones, bits := network.Mask.Size()
	base := binary.BigEndian.Uint32(network.IP.To4())
	pool := &ipPool{bySbox: map[string]string{}}
	for i := uint32(1); i < uint32(1)<<(bits-ones)-1; i++ {
		ip := make(net.IP, 4)
		binary.BigEndian.PutUint32(ip, base+i)
		pool.free = append(pool.free, ip.String())
	}
	return pool, nil
}

func (p *ipPool) take(sandbox string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ip, ok := p.bySbox[sandbox]; ok {
		return ip, nil
	}
	if len(p.free) == 0 {
		return "", fmt.Errorf("pod CIDR exhausted")
	}
	ip := p.free[0]
	p.free = p.free[1:]
	p.bySbox[sandbox] = ip
	return ip, nil
}

func (p *ipPool) release(sandbox string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ip, ok := p.bySbox[sandbox]; ok {
		delete(p.bySbox, sandbox)
		p.free = append(p.free, ip)
	}
}
