package telsim

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
)

// TestReservationsListing checks GET /reservations and its Go client: every
// live reservation once, sorted by key, with its bridge id, name and meta;
// released and updated ones as they now are; an empty table as [].
func TestReservationsListing(t *testing.T) {
	s, addr, hs := controlServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	cc := NewControlClient(hs.URL, nil)
	if code, body := doHTTP(t, "GET", hs.URL+"/reservations", ""); code != 200 || body != "[]" {
		t.Fatalf("GET /reservations on an empty table: %d %s", code, body)
	}

	c := dial(t, addr)
	bridges := map[uint64]string{}
	// Keys out of order and spread over shards; 150 so several share one.
	for i := range 150 {
		key := uint64(1_000_000 + (i*7919)%150)
		b, err := c.reserve(key, testSpec(i), []byte(fmt.Sprint("meta-", key)))
		if err != nil {
			t.Fatal(err)
		}
		bridges[key] = string(b.ID)
	}
	for key := uint64(1_000_000); key < 1_000_150; key += 3 {
		if err := c.release(key); err != nil {
			t.Fatal(err)
		}
		delete(bridges, key)
	}
	if _, err := c.update(1_000_001, testSpec(0), []byte("updated")); err != nil {
		t.Fatal(err)
	}

	got, err := cc.Reservations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(bridges) || len(got) != 100 {
		t.Fatalf("%d reservations listed, %d held", len(got), len(bridges))
	}
	for i, r := range got {
		if i > 0 && got[i-1].Key >= r.Key {
			t.Fatalf("listing not sorted by key at %d: %d then %d", i, got[i-1].Key, r.Key)
		}
		want := fmt.Sprint("meta-", r.Key)
		if r.Key == 1_000_001 {
			want = "updated"
		}
		if id, ok := bridges[r.Key]; !ok || r.BridgeID != id || string(r.Meta) != want || r.Name == "" {
			t.Fatalf("listed %+v; held: %v, bridge %q, meta %q", r, ok, id, want)
		}
	}

	// The HTTP form is the same list, meta in base64.
	code, body := doHTTP(t, "GET", hs.URL+"/reservations", "")
	var raw []map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &raw) != nil || len(raw) != 100 {
		t.Fatalf("GET /reservations: %d, %d entries", code, len(raw))
	}
	if m := raw[0]; m["key"] != float64(got[0].Key) || m["bridge_id"] != got[0].BridgeID || m["meta"] == nil {
		t.Fatalf("JSON entry %v, want %+v", m, got[0])
	}
	if n := len(s.Reservations()); n != 100 {
		t.Fatalf("Server.Reservations: %d", n)
	}
}
