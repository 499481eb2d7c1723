package daemon

import "switchboard/route"

// withKeySource replaces the key generator (tests of the KEY_EXISTS defence).
func withKeySource(k route.KeySource) Option { return func(d *Daemon) { d.keysOverride = k } }
