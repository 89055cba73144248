package stats

import (
	"os"

	"golang.org/x/sys/unix"
)

func dupFD(f *os.File) (int, error) {
	return unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
}
