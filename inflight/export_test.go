package inflight

import "unsafe"

func ptr(s []byte) unsafe.Pointer { return unsafe.Pointer(&s[0]) }
