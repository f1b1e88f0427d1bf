package release

import (
	"strings"
	"testing"
)

// make sizes attributes each symbol to its module: methods, generic
// instantiations, types and itabs go to the module of their package, the
// longest module path first; package main to the main module; Go's own
// packages to std; zero-filled data and the second, local. names of
// symbols count nothing.
func TestAttribute_EachSymbolToItsModule(t *testing.T) {
	nm := strings.Join([]string{
		" 1000 100 T k8s.io/api/core/v1.(*Pod).Reset",
		" 1000 100 t local.k8s.io/api/core/v1.(*Pod).Reset",
		" 2000 40 R type:*k8s.io/api/core/v1.Pod",
		" 3000 7 T k8s.io/apimachinery/pkg/runtime.(*Scheme).New",
		" 4000 5 R go:itab.*k8s.io/client-go/rest.Config,k8s.io/api/core/v1.Thing",
		" 5000 3 T helm.sh/helm/v4/pkg/action.run[go.shape.int]",
		" 6000 2 T main.main",
		" 7000 11 T crypto/tls.(*Conn).Read",
		" 8000 13 D vendor/golang.org/x/net/idna.table",
		" 9000 1000000 D crypto/internal/fips140/drbg.memory",
		" a000 17 B runtime.mheap_",
		" b000 19 R go:func.*",
		" c000 23 U net.dial",
	}, "\n")
	zero := func(a uint64) bool { return a == 0x9000 }
	s, err := Attribute(strings.NewReader(nm), "github.com/prenv/prenv",
		[]string{"k8s.io/api", "k8s.io/apimachinery", "k8s.io/client-go", "helm.sh/helm/v4"}, zero)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, m := range s.Modules {
		got[m.Module] = m.Bytes
	}
	want := map[string]int64{"k8s.io/api": 140, "k8s.io/apimachinery": 7, "k8s.io/client-go": 5, "helm.sh/helm/v4": 3, "github.com/prenv/prenv": 2, "std": 24}
	for m, b := range want {
		if got[m] != b {
			t.Errorf("%s: %d bytes, want %d (all: %v)", m, got[m], b, got)
		}
	}
	if len(got) != len(want) || s.Other != 19 {
		t.Errorf("modules %v, other %d; want %v and 19", got, s.Other, want)
	}
	if s.Modules[0].Module != "k8s.io/api" {
		t.Errorf("largest first: %v", s.Modules)
	}
}
