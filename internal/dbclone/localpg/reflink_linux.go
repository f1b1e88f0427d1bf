package localpg

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// reflink makes dst share src's blocks with the FICLONE ioctl (XFS with
// reflink=1, btrfs, bcachefs). It returns errNoReflink where the
// filesystem cannot, leaving no dst behind.
func reflink(src, dst string, mode fs.FileMode, owner [2]int) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	err = unix.IoctlFileClone(int(out.Fd()), int(in.Fd()))
	if err == nil && owner[0] >= 0 {
		err = out.Chown(owner[0], owner[1])
	}
	cerr := out.Close()
	if err != nil {
		os.Remove(dst)
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.ENOSYS) {
			return errNoReflink
		}
		return err
	}
	return cerr
}
