package etcdstore_test

import (
	"errors"
	"strings"
	"testing"

	"switchboard/keygen"
	"switchboard/keygen/etcdstore"
)

// TestCheckEndpoint: only http(s)://host:port passes; ClientConfig.Validate
// refuses the rest with keygen.ErrInvalidConfig, and never repeats a
// password the URL holds.
func TestCheckEndpoint(t *testing.T) {
	for _, ep := range []string{"http://127.0.0.1:2379", "https://etcd-1.example:2379/", "http://[::1]:2379"} {
		if err := etcdstore.CheckEndpoint(ep); err != nil {
			t.Errorf("%q: %v", ep, err)
		}
	}
	for _, ep := range []string{
		"", "127.0.0.1:2379", "unix:///run/etcd.sock", "http://127.0.0.1:0", "http://127.0.0.1:65536", "http://:2379",
		"http://127.0.0.1", "http://127.0.0.1:", "http://127.0.0.1:2379/v3", "http://127.0.0.1:2379?x=1", "http://127.0.0.1:2379?",
		"http://127.0.0.1:2379#f", "http://sb:hunter2@127.0.0.1:2379", "http://sb@127.0.0.1:2379",
	} {
		if err := etcdstore.CheckEndpoint(ep); err == nil {
			t.Errorf("%q accepted", ep)
		}
		err := etcdstore.ClientConfig{Endpoints: []string{ep}}.Validate()
		if !errors.Is(err, keygen.ErrInvalidConfig) {
			t.Errorf("Validate(%q) = %v, want ErrInvalidConfig", ep, err)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Validate(%q) repeats the password: %v", ep, err)
		}
	}
	if got := etcdstore.RedactEndpoint("https://sb:hunter2@h:2379/x"); got != "https://REDACTED@h:2379/x" {
		t.Errorf("RedactEndpoint = %q", got)
	}
}
