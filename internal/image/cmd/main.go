// Command image builds prenv's container image (make image): an OCI image
// layout in dist/image, pushed to IMAGE_REPO when it is set.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/prenv/prenv/internal/image"
	"github.com/prenv/prenv/internal/release"
)

func main() {
	out := flag.String("out", "dist/image", "where the OCI image layout goes")
	version := flag.String("version", "", "the version (default: the tag at HEAD, else v0.0.0-<commit date>-<commit>)")
	platforms := flag.String("platforms", "", "os/arch,... (default: linux/amd64,linux/arm64)")
	repo := flag.String("repo", os.Getenv("IMAGE_REPO"), "push to this repository (host/path), tagged with the version; default $IMAGE_REPO, empty: no push")
	source := flag.String("source", "https://github.com/prenv/prenv", "the repository's URL, in the image's labels")
	flag.Parse()
	ro, err := release.FromGit(".", *version)
	if err != nil {
		log.Fatal("image: ", err)
	}
	o := image.Options{Options: ro, Source: *source}
	if *platforms != "" {
		if o.Platforms, err = release.ParseTargets(*platforms); err != nil {
			log.Fatal("image: ", err)
		}
	}
	ctx := context.Background()
	idx, err := image.Build(ctx, o)
	if err != nil {
		log.Fatal("image: ", err)
	}
	if err := image.WriteLayout(*out, idx); err != nil {
		log.Fatal("image: ", err)
	}
	d, err := idx.Digest()
	if err != nil {
		log.Fatal("image: ", err)
	}
	fmt.Printf("%s: prenv %s, %s\n", *out, ro.Version, d)
	if *repo == "" {
		fmt.Println("not pushed: set IMAGE_REPO (host/path) to push")
		return
	}
	ref := *repo + ":" + ro.Version
	if err := image.Push(ctx, ref, idx, false); err != nil {
		log.Fatalf("image: push %s: %v (log in with docker login, or a credential helper)", ref, err)
	}
	fmt.Printf("pushed %s@%s\n", ref, d)
}
