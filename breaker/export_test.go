package breaker

// SetTestHookMirror makes f run inside the state-change callback, after the
// callback has decided that its gobreaker is current and before the mirror is
// written: the window a concurrent Retune must not fall into unnoticed.
func (b *Breaker) SetTestHookMirror(f func()) { b.testHookMirror = f }
