// Command controlplane runs the pieces of a real Kubernetes control plane for
// ecr-creds-refresher's tests, benchmarks and demo: etcd, kube-apiserver and
// kube-controller-manager, built from the Kubernetes Go modules.
//
// Each component is a subcommand run as its own process, because the
// Kubernetes components register global flags and metrics and do not share a
// process well. The TypeScript harness (test/harness/controlplane.ts) starts
// the three and wires them together.
package main

import (
	"fmt"
	"os"
	"time"

	"k8s.io/component-base/cli"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	// A test run that dies (SIGKILL, a crashed runner) must not leave an API
	// server behind: with CONTROLPLANE_EXIT_WITH_PARENT set, exit once the
	// parent is gone (the process is then re-parented).
	if os.Getenv("CONTROLPLANE_EXIT_WITH_PARENT") != "" {
		go exitWithParent(os.Getppid())
	}
	sub := os.Args[1]
	os.Args = append([]string{os.Args[0] + " " + sub}, os.Args[2:]...)
	switch sub {
	case "etcd":
		os.Exit(runEtcd(os.Args[1:]))
	case "kube-apiserver":
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: controlplane etcd|kube-apiserver|kube-controller-manager [flags]")
	os.Exit(2)
}

func exitWithParent(parent int) {
	for range time.Tick(time.Second) {
		if os.Getppid() != parent {
			fmt.Fprintln(os.Stderr, "controlplane: parent process gone, exiting")
			os.Exit(1)
		}
	}
}
