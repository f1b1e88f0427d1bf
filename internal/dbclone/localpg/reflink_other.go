//go:build !linux && !darwin

package localpg

import "io/fs"

func reflink(string, string, fs.FileMode) error { return errNoReflink }
