package localpg

import (
	"errors"
	"io/fs"

	"golang.org/x/sys/unix"
)

// reflink makes dst a copy-on-write clone of src with clonefile(2) (APFS).
func reflink(src, dst string, _ fs.FileMode) error {
	err := unix.Clonefile(src, dst, unix.CLONE_NOFOLLOW)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EXDEV) {
		return errNoReflink
	}
	return err
}
