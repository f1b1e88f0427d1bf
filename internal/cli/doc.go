// Package cli is prenv's command line: one file per command, flags bound into
// the lifecycle's options. It holds no logic of its own beyond wiring
// configuration to providers (providers.go) and printing results.
package cli
