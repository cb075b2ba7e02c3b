//go:build !k8s1.35 && !k8s1.36

package main

import (
	"context"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	remote "k8s.io/cri-client/pkg"
)

// newRuntimeClient dials the fake runtime's CRI socket (cri-client 1.37+: a builder).
func newRuntimeClient(ctx context.Context, endpoint string, timeout time.Duration) (internalapi.RuntimeService, error) {
	return remote.NewRemoteRuntimeServiceBuilder().WithEndpoint(endpoint).WithConnectionTimeout(timeout).Build(ctx)
}
