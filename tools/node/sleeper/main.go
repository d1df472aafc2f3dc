// Command sleeper is the one program of the node world's images, built
// static so that an image needs nothing else: as the pod sandbox (pause)
// image and as the test workloads' image it prints what it is and then
// waits until it is told to stop.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	fmt.Printf("sleeper %v: running\n", os.Args[1:])
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
