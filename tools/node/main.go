// Command node runs the Kubernetes pieces of ecr-creds-refresher's node
// world (test/harness/node.ts): a kubelet and a kube-scheduler, built from
// k8s.io/kubernetes at the version tools/controlplane pins (this module
// copies its requirements and replaces, so the Go build cache is shared).
//
// Each is a subcommand run as its own process, like tools/controlplane's.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"k8s.io/component-base/cli"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	// A test run that dies must not leave a kubelet behind: with
	// CONTROLPLANE_EXIT_WITH_PARENT set, exit once the parent is gone.
	if os.Getenv("CONTROLPLANE_EXIT_WITH_PARENT") != "" {
		go exitWithParent(os.Getppid())
	}
	sub := os.Args[1]
	os.Args = append([]string{os.Args[0] + " " + sub}, os.Args[2:]...)
	switch sub {
	case "kubelet":
		os.Exit(cli.Run(kubelet.NewKubeletCommand(context.Background())))
	case "kube-scheduler":
		os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: node kubelet|kube-scheduler [flags]")
	os.Exit(2)
}

func exitWithParent(parent int) {
	for range time.Tick(time.Second) {
		if os.Getppid() != parent {
			fmt.Fprintln(os.Stderr, "node: parent process gone, exiting")
			os.Exit(1)
		}
	}
}
