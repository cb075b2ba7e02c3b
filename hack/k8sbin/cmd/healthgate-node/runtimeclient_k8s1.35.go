//go:build k8s1.35

package main

import (
	"context"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	remote "k8s.io/cri-client/pkg"
	"k8s.io/klog/v2"
)

// newRuntimeClient dials the fake runtime's CRI socket (cri-client 1.35: no context,
// a logger instead; nil tracer provider).
func newRuntimeClient(ctx context.Context, endpoint string, timeout time.Duration) (internalapi.RuntimeService, error) {
	logger := klog.FromContext(ctx)
	return remote.NewRemoteRuntimeService(endpoint, timeout, nil, &logger)
}
