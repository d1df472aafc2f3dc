//go:build tools

// Package containerd pins containerd v2 (the daemon, ctr and the runc shim)
// for the node world: scripts/build-node.sh builds the three commands from
// this module with the build tag no_btrfs.
package containerd

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
