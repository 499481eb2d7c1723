// Package testhook holds the hooks that tests set to force a race into a
// window of the production code: a window too narrow for a test to hit by
// timing, in code a test drives only through the whole daemon. Each hook is
// an atomic pointer, nil in production, where reading it is one atomic
// load on a path that is not hot.
//
// It is internal, so only this module's packages see it, and test-only:
// nothing but a test may store a hook. A test that does must store nil
// again before it ends (t.Cleanup), after whatever it started has stopped.
// It lives in its own package, apart from internal/testsupport, because
// production packages import it: it must pull in nothing.
package testhook
