package defaults

import (
	"testing"
	"time"
)

func TestOr(t *testing.T) {
	var n int
	Or(&n, 5)
	Or(&n, 7) // set already: kept
	d := 3 * time.Second
	Or(&d, time.Minute)
	var s string
	Or(&s, "json")
	if n != 5 || d != 3*time.Second || s != "json" {
		t.Fatalf("n=%d d=%v s=%q; want 5 3s json", n, d, s)
	}
}
