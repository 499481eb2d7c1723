package daemon

import "switchboard/frontend"

// frontendConfig maps the server.* settings onto the front-end server's
// (package frontend); the defaults and the validation are the config's.
func frontendConfig(c ServerConfig) frontend.Config {
	return frontend.Config{
		Transport: c.Transport, MaxFrame: c.MaxFrame, ReadTimeout: c.ReadTimeout, WriteTimeout: c.WriteTimeout,
		MaxConns: c.MaxConns, MaxInFlight: c.MaxInFlight, MaxConnInFlight: c.MaxConnInFlight, RequestTimeout: c.RequestTimeout,
		MaxConnUnanswered: c.MaxConnUnanswered, MaxConnQueuedBytes: c.MaxConnQueuedBytes, IdleTimeout: c.IdleTimeout,
		MaxConnsPerUID: c.MaxConnsPerUID, AllowUIDs: c.AllowUIDs, AllowGIDs: c.AllowGIDs,
	}
}
