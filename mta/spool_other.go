//go:build !linux

package mta

import "errors"

// freeBytes is not implemented here; the spool then skips the free-space check.
//
// TODO: statfs on the BSDs and Darwin, GetDiskFreeSpaceEx on Windows.
func freeBytes(string) (int64, error) {
	return 0, errors.New("free space check not supported on this system")
}
