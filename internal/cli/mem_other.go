//go:build !linux

package cli

// physicalMemory returns 0: the machine's memory is not looked up here.
func physicalMemory() uint64 { return 0 }
