// Command release builds prenv's release archives (make release).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"

	"github.com/prenv/prenv/internal/release"
)

func main() {
	out := flag.String("out", "dist", "where the archives and SHA256SUMS go")
	version := flag.String("version", "", "the version (default: the tag at HEAD, else v0.0.0-<commit date>-<commit>)")
	targets := flag.String("targets", "", "os/arch,... (default: linux and darwin on amd64 and arm64)")
	sizes := flag.Int("sizes", 0, "build nothing for release: print the size of this machine's release binary and what the N largest modules cost in it")
	flag.Parse()
	if *sizes > 0 {
		printSizes(*sizes)
		return
	}
	o, err := release.FromGit(".", *version)
	if err != nil {
		log.Fatal("release: ", err)
	}
	o.Out = *out
	if *targets != "" {
		if o.Targets, err = release.ParseTargets(*targets); err != nil {
			log.Fatal("release: ", err)
		}
	}
	paths, err := release.Build(context.Background(), o)
	if err != nil {
		log.Fatal("release: ", err)
	}
	for _, p := range paths {
		st, _ := os.Stat(p)
		fmt.Printf("%s  %.1f MB\n", p, float64(st.Size())/1e6)
	}
	fmt.Printf("%s/SHA256SUMS\n", *out)
}

// printSizes prints what each module costs in the release binary, the
// measure behind trimming dependencies (make sizes).
func printSizes(n int) {
	s, err := release.Measure(context.Background(), ".", "")
	if err != nil {
		log.Fatal("sizes: ", err)
	}
	mb := func(b int64) string { return fmt.Sprintf("%6.2f MB", float64(b)/1e6) }
	fmt.Printf("release binary (stripped, %s/%s): %s\n\n", runtime.GOOS, runtime.GOARCH, mb(s.Stripped))
	fmt.Printf("| module | symbols |\n|---|---:|\n")
	var total, rest int64
	for i, m := range s.Modules {
		total += m.Bytes
		if i < n {
			fmt.Printf("| %s | %s |\n", m.Module, mb(m.Bytes))
		} else {
			rest += m.Bytes
		}
	}
	if len(s.Modules) > n {
		fmt.Printf("| %d other modules | %s |\n", len(s.Modules)-n, mb(rest))
	}
	fmt.Printf("| (no package: function data, strings) | %s |\n", mb(s.Other))
	fmt.Printf("| (unnamed: function tables, headers) | %s |\n", mb(s.Stripped-total-s.Other))
}
