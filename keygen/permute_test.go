package keygen

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
)

func mustPerm(t testing.TB, secret []byte, digits int) *Permutation {
	t.Helper()
	p, err := NewPermutation(secret, digits)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPermutationBijectionExhaustive6Digits(t *testing.T) {
	p := mustPerm(t, testSecret, 6)
	n := p.Size()
	if n != 900_000 {
		t.Fatalf("Size() = %d, want 900000", n)
	}
	// Every counter through the block path (all lanes and the scalar tail),
	// split among the cores.
	keys := make([]uint64, n)
	var wg sync.WaitGroup
	parts := runtime.GOMAXPROCS(0)
	for w := range parts {
		lo, hi := n*uint64(w)/uint64(parts), n*uint64(w+1)/uint64(parts)
		wg.Go(func() { p.FillKeys(keys[lo:hi], lo) })
	}
	wg.Wait()
	seen := make([]bool, n)
	for c, k := range keys {
		if k < 100_000 || k > 999_999 {
			t.Fatalf("key %d of counter %d is not a 6-digit number", k, c)
		}
		y := k - 100_000
		if seen[y] {
			t.Fatalf("π is not injective: %d hit twice (counter %d)", y, c)
		}
		seen[y] = true
	}
	// n distinct values in a set of n: every value is hit, π is a bijection.
	// The inverse and the scalar path, on a stride (all of them without -race).
	stride := uint64(1)
	if raceEnabled {
		stride = 97
	}
	for c := uint64(0); c < n; c += stride {
		y := keys[c] - 100_000
		if got := p.Invert(y); got != c {
			t.Fatalf("Invert(Apply(%d)) = %d", c, got)
		}
		if c%9973 == 0 {
			if got := p.Apply(c); got != y {
				t.Fatalf("Apply(%d) = %d, FillKeys gave %d", c, got, y)
			}
		}
	}
}

func TestPermutationRoundTripSampled(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for d := MinDigits; d <= MaxDigits; d++ {
		p := mustPerm(t, testSecret, d)
		n, off := p.Size(), KeyOffset(d)
		samples := 2000
		if d == MaxDigits {
			samples = 100_000
		}
		if raceEnabled {
			samples /= 10
		}
		for i := 0; i < samples; i++ {
			var c uint64
			switch i {
			case 0:
				c = 0
			case 1:
				c = n - 1
			default:
				c = rng.Uint64N(n)
			}
			y := p.Apply(c)
			if y >= n {
				t.Fatalf("D=%d: Apply(%d) = %d outside [0, %d)", d, c, y, n)
			}
			if back := p.Invert(y); back != c {
				t.Fatalf("D=%d: Invert(Apply(%d)) = %d", d, c, back)
			}
			k := p.Key(c)
			if k < off || k >= 10*off {
				t.Fatalf("D=%d: key %d has the wrong number of digits", d, k)
			}
			if back, ok := p.Counter(k); !ok || back != c {
				t.Fatalf("D=%d: Counter(Key(%d)) = %d, %v", d, c, back, ok)
			}
		}
	}
}

func TestPermutationFillKeysMatchesKey(t *testing.T) {
	p := mustPerm(t, testSecret, 9)
	for _, n := range []int{0, 1, lanes - 1, lanes, lanes + 1, 3*lanes + 5} {
		dst := make([]uint64, n)
		p.FillKeys(dst, 12345)
		for i, k := range dst {
			if want := p.Key(12345 + uint64(i)); k != want {
				t.Fatalf("len %d: dst[%d] = %d, want %d", n, i, k, want)
			}
		}
	}
	// Up to the very end of the domain.
	dst := make([]uint64, 7)
	p.FillKeys(dst, p.Size()-7)
	for i, k := range dst {
		if k != p.Key(p.Size()-7+uint64(i)) {
			t.Fatalf("tail dst[%d] mismatch", i)
		}
	}
}

// TestPermutationGolden pins π: a change to the construction would map
// counters already used to different keys and so reissue keys on upgrade.
// If this test fails, the change needs a new scheme version, not new vectors.
// The vectors come from testdata/ref_perm.py, an independent implementation
// of the construction as docs/architecture.md specifies it.
func TestPermutationGolden(t *testing.T) {
	cases := []struct {
		digits  int
		counter uint64
		key     uint64
	}{
		{6, 0, 263194}, {6, 1, 991617}, {6, 899_999, 459727},
		{9, 0, 646429085}, {9, 1, 764428062}, {9, 2, 901274763}, {9, 899_999_999, 658766356},
		{18, 0, 587283400539386901}, {18, 1, 563487252285492946}, {18, 899_999_999_999_999_999, 952911718402977648},
	}
	for _, c := range cases {
		p := mustPerm(t, testSecret, c.digits)
		if got := p.Key(c.counter); got != c.key {
			t.Errorf("D=%d Key(%d) = %d, want %d", c.digits, c.counter, got, c.key)
		}
	}
	if got, want := FingerprintOf(testSecret).String(), "5b63a82b98f5686669a9dd498b7e671a"; got != want {
		t.Errorf("fingerprint = %s, want %s", got, want)
	}
}

func TestPermutationConsecutiveKeysLookUnrelated(t *testing.T) {
	p := mustPerm(t, testSecret, 9)
	const count = 20_000
	keys := make([]uint64, count)
	p.FillKeys(keys, 0)

	deltas := make(map[int64]int)
	dup := 0
	var sumAbs float64
	for i := 1; i < count; i++ {
		d := int64(keys[i]) - int64(keys[i-1])
		if i > 1 && d == int64(keys[i-1])-int64(keys[i-2]) {
			t.Fatalf("keys %d..%d are in arithmetic progression", i-2, i)
		}
		if deltas[d]++; deltas[d] > 1 {
			dup++
		}
		sumAbs += float64(max(d, -d))
	}
	// 2·10^4 deltas drawn from ~1.8·10^9 values: a repeat is expected
	// ~0.1 times; a structured π (e.g. an affine map) repeats constantly.
	if dup > 3 {
		t.Errorf("%d repeated deltas among %d consecutive keys", dup, count)
	}
	// For independent uniform keys E|k_{i+1} − k_i| = N/3.
	mean, want := sumAbs/float64(count-1), float64(p.Size())/3
	if mean < 0.95*want || mean > 1.05*want {
		t.Errorf("mean |delta| = %.0f, want ≈ %.0f", mean, want)
	}

	// Leading digits of uniform 9-digit keys are uniform over 1..9.
	var first [10]int
	for _, k := range keys {
		first[k/100_000_000]++
	}
	exp := float64(count) / 9
	chi2 := 0.0
	for d := 1; d <= 9; d++ {
		chi2 += (float64(first[d]) - exp) * (float64(first[d]) - exp) / exp
	}
	if chi2 > 26.1 { // χ²(8), p = 0.001
		t.Errorf("leading digits %v: χ² = %.1f", first[1:], chi2)
	}

	// Every low bit of π(c) is set about half the time.
	for b := 0; b < 16; b++ {
		ones := 0
		for _, k := range keys {
			ones += int((k - 100_000_000) >> b & 1)
		}
		if f := float64(ones) / count; f < 0.48 || f > 0.52 {
			t.Errorf("bit %d set in %.3f of keys", b, f)
		}
	}
}

func TestPermutationDependsOnSecret(t *testing.T) {
	other := append([]byte(nil), testSecret...)
	other[0] ^= 1
	p, q := mustPerm(t, testSecret, 9), mustPerm(t, other, 9)
	same := 0
	for c := uint64(0); c < 10_000; c++ {
		if p.Apply(c) == q.Apply(c) {
			same++
		}
	}
	if same > 2 {
		t.Errorf("%d of 10000 counters map to the same key under different secrets", same)
	}
	if p.Fingerprint() == q.Fingerprint() {
		t.Error("different secrets have the same fingerprint")
	}
}

func TestPermutationRejects(t *testing.T) {
	if _, err := NewPermutation([]byte("short"), 9); err == nil {
		t.Error("short secret accepted")
	}
	for _, d := range []int{0, 5, 19} {
		if _, err := NewPermutation(testSecret, d); err == nil {
			t.Errorf("digits %d accepted", d)
		}
	}
	p := mustPerm(t, testSecret, 6)
	for _, k := range []uint64{0, 99_999, 1_000_000} {
		if _, ok := p.Counter(k); ok {
			t.Errorf("Counter(%d) accepted a key that is not 6 digits", k)
		}
	}
	mustPanic(t, "Apply(N)", func() { p.Apply(p.Size()) })
	mustPanic(t, "Invert(N)", func() { p.Invert(p.Size()) })
	mustPanic(t, "FillKeys past N", func() { p.FillKeys(make([]uint64, 2), p.Size()-1) })
}

func TestCeilSqrt(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 4, 5, 899_999, 900_000, 900_601, 900_602, 9e17, 1 << 62} {
		a := ceilSqrt(n)
		if a*a < n || (a > 0 && (a-1)*(a-1) >= n) {
			t.Errorf("ceilSqrt(%d) = %d", n, a)
		}
	}
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}
