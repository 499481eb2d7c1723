package daemon

// withKeySource replaces the key generator (tests of the KEY_EXISTS defence).
func withKeySource(k keySource) Option { return func(d *Daemon) { d.keysOverride = k } }
