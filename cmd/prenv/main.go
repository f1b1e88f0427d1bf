// Command prenv gives every pull request its own preview environment.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/prenv/prenv/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.Options{})
	stop()
	os.Exit(code)
}
