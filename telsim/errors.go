package telsim

import "errors"

// Errors of the package. Match them with errors.Is; the unexported ones are
// reasons a connection stops, logged at Debug.
var (
	// ErrBadConfig wraps every Config.Validate failure.
	ErrBadConfig = errors.New("telsim: invalid config")
	// ErrBadFault wraps every rejected Fault.
	ErrBadFault = errors.New("telsim: invalid fault")
	// ErrClosed is returned by operations on a closed Server.
	ErrClosed = errors.New("telsim: server closed")
	// ErrServing is returned by Serve or Start on a Server that already
	// serves a listener.
	ErrServing = errors.New("telsim: server already serving")

	errResponseFrame = errors.New("telsim: client sent a response frame")
	errConnClosing   = errors.New("telsim: connection closing")
)
