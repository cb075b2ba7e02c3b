//go:build k8s1.36

package main

import (
	"context"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	remote "k8s.io/cri-client/pkg"
)

// newRuntimeClient dials the fake runtime's CRI socket (cri-client 1.36: no builder yet;
// nil tracer provider, unary list calls).
func newRuntimeClient(ctx context.Context, endpoint string, timeout time.Duration) (internalapi.RuntimeService, error) {
	return remote.NewRemoteRuntimeService(ctx, endpoint, timeout, nil, false)
}
