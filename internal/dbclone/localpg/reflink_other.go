//go:build !linux && !darwin

package localpg

import "io/fs"

func reflink(string, string, fs.FileMode, [2]int) error { return errNoReflink }
