package localpg

import (
	"errors"
	"io/fs"

	"golang.org/x/sys/unix"
)

// reflink makes dst a copy-on-write clone of src with clonefile(2) (APFS).
func reflink(src, dst string, _ fs.FileMode, owner [2]int) error {
	err := unix.Clonefile(src, dst, unix.CLONE_NOFOLLOW)
	if err == nil && owner[0] >= 0 {
		err = unix.Lchown(dst, owner[0], owner[1])
	}
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EXDEV) {
		return errNoReflink
	}
	return err
}
