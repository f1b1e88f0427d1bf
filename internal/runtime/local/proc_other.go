//go:build !linux

package local

import (
	"errors"
	"syscall"
	"time"
)

// procAttr puts the app in its own process group, so that stopping it stops
// its children too.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

func waitExited(int) error { return errors.ErrUnsupported }

// identify cannot tell processes apart here, so recorded processes are
// never signalled.
func identify(int) string { return "" }

func groupMembers(int, string) []int { return nil }

func waitGroupGone(int, string, time.Duration) bool { return true }

func killUser(int, int, time.Duration) int { return 0 }

func processUIDs() map[int]bool { return nil }

func killAllOf(Identity, time.Duration) error { return nil }

type process struct {
	PID     int
	Started time.Time
}

func processesByUID() map[int][]process { return nil }
