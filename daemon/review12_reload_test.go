package daemon

import (
	"slices"
	"testing"
)

// A reload that changes simulators[].capacity retunes the running
// simulator in place (reload: the SimHost's plan, at Commit), as the
// daemon did when it hosted the simulators itself; one whose settings do
// not change is left alone. A guard: no other test fails if the reload
// stops retuning them.
func TestReview12ReloadRetunesSimulators(t *testing.T) {
	h := startDaemon(t, nil)
	ng, pl := h.d.Simulator("nextgen"), h.d.Simulator("primary-large")
	if ng == nil || pl == nil {
		t.Fatal("the default config's simulators are not running")
	}
	pl.SetCapacity(5) // changed behind the config's back: a reload that leaves primary-large's settings alone keeps it
	nc := *h.d.Config()
	nc.Simulators = slices.Clone(nc.Simulators)
	found := false
	for i := range nc.Simulators {
		if nc.Simulators[i].Name == "nextgen" {
			nc.Simulators[i].Capacity = 7
			found = true
		}
	}
	if !found {
		t.Fatal("no nextgen in the default config's simulators")
	}
	if err := h.d.Reload(reloadCtx(t), &nc); err != nil {
		t.Fatal(err)
	}
	if h.d.Simulator("nextgen") != ng {
		t.Fatal("the reload replaced the nextgen simulator instead of retuning it")
	}
	if got := ng.Stats().Capacity; got != 7 {
		t.Errorf("nextgen capacity %d after the reload, want 7", got)
	}
	if got := pl.Stats().Capacity; got != 5 {
		t.Errorf("primary-large capacity %d after a reload that did not change it, want 5 (left alone)", got)
	}
}
