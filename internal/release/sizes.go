package release

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ModuleSize is what one module costs in a binary: the bytes of its
// symbols (code, read-only data, initialised data).
type ModuleSize struct {
	Module string
	Bytes  int64
}

// Sizes is what a release binary is made of (make sizes).
type Sizes struct {
	Stripped int64        // the release binary's size
	Modules  []ModuleSize // largest first; "std" is Go's standard library and runtime
	Other    int64        // symbols no package owns (function tables' entries, strings)
}

// Measure builds prenv for this machine twice, as released and with its
// symbol table, and attributes every symbol to the module whose package it
// belongs to. The release binary's size also holds what no symbol names
// (the pclntab function tables, roughly in proportion to the code), so the
// modules add up to less than Stripped.
func Measure(ctx context.Context, module, goCmd string) (Sizes, error) {
	if goCmd == "" {
		goCmd = "go"
	}
	tmp, err := os.MkdirTemp("", "prenv-sizes-")
	if err != nil {
		return Sizes{}, err
	}
	defer os.RemoveAll(tmp)
	build := func(out string, ldflags string) error {
		cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, "./cmd/prenv")
		cmd.Dir = module
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build: %v\n%s", err, b)
		}
		return nil
	}
	stripped, full := filepath.Join(tmp, "prenv"), filepath.Join(tmp, "prenv-symbols")
	if err := build(stripped, "-s -w -buildid="); err != nil {
		return Sizes{}, err
	}
	if err := build(full, "-buildid="); err != nil {
		return Sizes{}, err
	}
	st, err := os.Stat(stripped)
	if err != nil {
		return Sizes{}, err
	}
	info, err := buildinfo.ReadFile(full)
	if err != nil {
		return Sizes{}, err
	}
	var deps []string
	for _, d := range info.Deps {
		deps = append(deps, d.Path)
	}
	cmd := exec.CommandContext(ctx, goCmd, "tool", "nm", "-size", full)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Sizes{}, err
	}
	if err := cmd.Start(); err != nil {
		return Sizes{}, err
	}
	empty, err := zeroFilled(full)
	if err != nil {
		return Sizes{}, err
	}
	s, err := Attribute(out, info.Main.Path, deps, empty)
	if werr := cmd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("go tool nm: %w", werr)
	}
	s.Stripped = st.Size()
	return s, err
}

// Attribute reads 'go tool nm -size' output and sums the symbols' sizes per
// module, the longest module path that prefixes the symbol's package; the
// package main belongs to the main module. Uninitialised data (B, b) takes
// no room in the file and is not counted, nor is any symbol for which
// zero, given its address, says it lies in a zero-filled section.
func Attribute(nm io.Reader, main string, deps []string, zero func(addr uint64) bool) (Sizes, error) {
	modules := append([]string{main}, deps...)
	sort.Slice(modules, func(i, j int) bool { return len(modules[i]) > len(modules[j]) })
	by := map[string]int64{}
	var s Sizes
	sc := bufio.NewScanner(nm)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.Contains("TtRrDd", f[2]) {
			continue
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		if addr, err := strconv.ParseUint(f[0], 16, 64); err == nil && zero != nil && zero(addr) {
			continue
		}
		name := strings.Join(f[3:], " ")
		if strings.HasPrefix(name, "local.") { // a second name for a symbol already counted
			continue
		}
		pkg := packageOf(name)
		if pkg == "main" {
			pkg = main
		}
		if m := moduleOf(pkg, modules); m != "" {
			by[m] += size
		} else {
			s.Other += size
		}
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	for m, b := range by {
		s.Modules = append(s.Modules, ModuleSize{m, b})
	}
	sort.Slice(s.Modules, func(i, j int) bool {
		if s.Modules[i].Bytes != s.Modules[j].Bytes {
			return s.Modules[i].Bytes > s.Modules[j].Bytes
		}
		return s.Modules[i].Module < s.Modules[j].Module
	})
	return s, nil
}

// packageOf is the import path a symbol belongs to: "k8s.io/api/core/v1"
// for "k8s.io/api/core/v1.(*Pod).Reset" and for "type:*k8s.io/api/core/v1.Pod";
// "" for the linker's own tables (go:func.*).
func packageOf(sym string) string {
	if strings.HasPrefix(sym, "go:func.") {
		return ""
	}
	for _, p := range []string{"type:", "go:itab.", "go:string.", "go:"} {
		sym = strings.TrimPrefix(sym, p)
	}
	sym = strings.TrimLeft(sym, "*([]")
	for _, p := range []string{"chan ", "func(", "struct {", "noalg."} {
		sym = strings.TrimLeft(strings.TrimPrefix(sym, p), "*([]")
	}
	if i := strings.IndexAny(sym, "[(, "); i >= 0 { // type arguments, receivers, an itab's interface
		sym = sym[:i]
	}
	slash := strings.LastIndex(sym, "/")
	dot := strings.Index(sym[slash+1:], ".")
	if dot < 0 {
		return ""
	}
	return sym[:slash+1+dot]
}

// moduleOf is the module of pkg among modules (longest first); "std" for a
// package of Go's own (no dot in its first element).
func moduleOf(pkg string, modules []string) string {
	if pkg == "" {
		return ""
	}
	for _, m := range modules {
		if pkg == m || strings.HasPrefix(pkg, m+"/") {
			return m
		}
	}
	first, _, _ := strings.Cut(pkg, "/")
	if !strings.Contains(first, ".") {
		return "std"
	}
	return ""
}

// zeroFilled says which addresses of an ELF binary lie in sections that
// take no room in the file (.bss, .noptrbss): go tool nm calls some of
// their symbols D.
func zeroFilled(path string) (func(uint64) bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (make sizes reads ELF binaries: run it on linux)", path, err)
	}
	defer f.Close()
	type span struct{ from, to uint64 }
	var spans []span
	for _, s := range f.Sections {
		if s.Type == elf.SHT_NOBITS {
			spans = append(spans, span{s.Addr, s.Addr + s.Size})
		}
	}
	return func(a uint64) bool {
		for _, s := range spans {
			if a >= s.from && a < s.to {
				return true
			}
		}
		return false
	}, nil
}
