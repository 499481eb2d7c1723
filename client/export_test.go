package client

// StartFakeDaemon starts the test daemon on a Unix socket at path, for the
// examples (package client_test).
func StartFakeDaemon(path string) (stop func(), err error) {
	d, err := listenDaemon(path)
	if err != nil {
		return nil, err
	}
	return d.stop, nil
}
