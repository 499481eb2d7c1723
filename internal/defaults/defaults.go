// Package defaults fills the zero fields of configuration structs with their
// documented defaults. Config structs in switchboard read a zero value as
// "use the default"; Or states that rule once, for every field type, so an
// ApplyDefaults method is a list of field/default pairs.
package defaults

// Or sets *v to d when *v is the zero value of T.
func Or[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}
